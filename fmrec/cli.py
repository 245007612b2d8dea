"""The `fmrec` command: one subcommand module per stage, in the order data flows."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from fmrec import __version__
from fmrec.errors import FmrecError

# Each module defines register(subparsers) and sets `func` on its parser; heavy imports stay inside `func`.
COMMAND_MODULES = (
    "fmrec.commands.data",  # fmrec data fetch|synth
    "fmrec.commands.preprocess",  # fmrec preprocess
    "fmrec.commands.train",  # fmrec train
    "fmrec.commands.tune",  # fmrec tune
    "fmrec.commands.model",  # fmrec model export
    "fmrec.commands.pipeline",  # fmrec pipeline run|definition
    "fmrec.commands.models",  # fmrec models list|approve|reject
    "fmrec.commands.serve",  # fmrec serve endpoint|api
    "fmrec.commands.recommend",  # fmrec recommend
    "fmrec.commands.similar",  # fmrec similar
    "fmrec.commands.demo",  # fmrec demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmrec", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fmrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a stage not built yet
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
