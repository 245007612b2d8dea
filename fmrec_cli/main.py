"""The `fmrec` command: one subcommand module per stage, in the order data flows."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fmrec import __version__
from fmrec.errors import FmrecError
from fmrec_cli import (
    data,
    demo,
    deploy,
    evaluate,
    export,
    pipeline,
    preprocess,
    publish,
    rank,
    ratings,
    recommend,
    registry,
    runs,
    serve,
    similar,
    train,
    tune,
)

# Each module defines register(subparsers) and sets `func` on its parser; heavy imports stay inside `func`.
# In the order data flows: data fetch|synth, preprocess, train, tune, model export, evaluate, pipeline
# run|definition, runs list|compare|clean, models list|approve|reject, publish, serve endpoint|api, recommend,
# rank, similar, rate and ratings export, demo, deploy preflight.
COMMAND_MODULES = (
    data,
    preprocess,
    train,
    tune,
    export,
    evaluate,
    pipeline,
    runs,
    registry,
    publish,
    serve,
    recommend,
    rank,
    similar,
    ratings,
    demo,
    deploy,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmrec", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fmrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except FmrecError as exc:
        print(f"fmrec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fmrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
