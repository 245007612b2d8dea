"""`fmrec publish`: lay out a trained model and its lookup as a serving version, as the deployer does."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec_cli.hints import command

_VERSION_DIR = re.compile(r"v([0-9]+)")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "publish",
        help="publish a model.tar.gz and its lookup folder as a serving version (current.json)",
        description=(
            "Copy LOOKUP's files to ARTIFACTS/VERSION/lookup/ and MODEL to ARTIFACTS/VERSION/model.tar.gz, "
            "then point ARTIFACTS/current.json at VERSION (written last), the layout the API twin, the "
            "endpoint twin (--artifacts) and the recommend Lambda read (docs/api.md, 'Serving artifacts')."
        ),
    )
    parser.add_argument("--artifacts", type=Path, required=True, metavar="DIR", help="serving folder")
    parser.add_argument(
        "--lookup", type=Path, required=True, metavar="DIR", help="preprocess's lookup/ folder"
    )
    parser.add_argument("--model", type=Path, required=True, metavar="PATH", help="model.tar.gz")
    parser.add_argument(
        "--version", default=None, help="version name (default: v1 + the highest vN in --artifacts)"
    )
    parser.set_defaults(func=run)


def next_version(artifacts: Path) -> str:
    """v1 + the highest vN folder already in `artifacts` (v1 in a new folder)."""
    taken = [
        int(m.group(1))
        for p in (artifacts.iterdir() if artifacts.is_dir() else [])
        if p.is_dir() and (m := _VERSION_DIR.fullmatch(p.name))
    ]
    return f"v{1 + max(taken, default=0)}"


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the model reader loads numpy only when this command runs)
    from fmrec.model.artifact import load_model_tar
    from fmrec.serving.lookup import read_lookup
    from twins.api.publish import publish_version

    if not args.model.is_file():
        raise InputError(f"--model {args.model}: no such file (expected the model.tar.gz of `fmrec train`)")
    model, lookup = load_model_tar(args.model), read_lookup(args.lookup)
    if model.params.feature_dim != lookup.feature_dim:
        raise InputError(
            f"--model {args.model} has feature_dim {model.params.feature_dim} but --lookup {args.lookup} "
            f"{lookup.feature_dim}: they come from different preprocess runs"
        )
    version = args.version or next_version(args.artifacts)
    publish_version(args.artifacts, version, args.lookup, args.model)
    print(f"published {version} in {args.artifacts} (current.json names it)")
    print(f"  serve it: {command('serve', 'endpoint', '--artifacts', args.artifacts, '--port', 8080)}")
    api = command("serve", "api", "--artifacts", args.artifacts, "--endpoint-url", "http://127.0.0.1:8080")
    print(f"      then: {api}")
    return 0
