"""`fmrec model export|inspect`: user and item embeddings from a model.tar.gz, or what the artifact holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fmrec.errors import InputError


def _export(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy loads only when this command runs)
    from fmrec.model.artifact import load_model_tar
    from fmrec.model.export import IdLayout, export_embeddings

    model = load_model_tar(args.model)
    lookup = None
    if args.lookup:
        # local import: CLI start-up (the lookup reader loads only when this command runs)
        from fmrec.serving.lookup import read_lookup

        lookup = read_lookup(Path(args.lookup))
        layout = IdLayout.from_lookup(lookup)
    elif args.n_users is not None:
        layout = IdLayout.positional(args.n_users, model.feature_dim)
    else:
        raise InputError(
            "model export: give --lookup DIR (preprocess's lookup artifacts, for MovieLens ids) "
            "or --n-users N "
            "(ids become column positions)"
        )
    summary = export_embeddings(model, layout, args.out, replace=args.replace, lookup=lookup)
    k = summary["num_factors"]
    print(f"{summary['users']} users and {summary['items']} items, {k} factors -> {args.out}")
    print(f"score: {summary['score']}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy loads only when this command runs)
    from fmrec.model.artifact import load_model_tar

    model = load_model_tar(args.model)
    p = model.params
    info = {
        "predictor_type": model.predictor_type,
        "feature_dim": p.feature_dim,
        "num_factors": p.num_factors,
        "w0": p.w0,
        "training_parameters": model.meta.get("training_parameters", {}),
    }
    print(json.dumps(info, indent=2))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("model", help="work with an FM model.tar.gz (export embeddings, inspect)")
    model_sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    export = model_sub.add_parser(
        "export",
        help="write user and item embeddings and biases keyed by their ids",
        description=(
            "Write OUT/users.csv and OUT/items.csv (id, bias, f0..f{k-1}), OUT/embeddings.npz and "
            "OUT/export.json from a model.tar.gz (ours or SageMaker's). The id mapping comes from "
            "preprocess's lookup artifacts (--lookup) or, without them, from column positions (--n-users)."
        ),
    )
    export.add_argument("--model", required=True, metavar="PATH", help="model.tar.gz")
    export.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist)")
    export.add_argument(
        "--lookup", metavar="DIR", help="preprocess's lookup folder (user and movie ids, titles)"
    )
    export.add_argument(
        "--n-users", type=int, metavar="N", help="without --lookup: the first N columns are users"
    )
    export.add_argument("--replace", action="store_true", help="replace an existing output folder")
    export.set_defaults(func=_export)
    inspect = model_sub.add_parser("inspect", help="print a model.tar.gz's shape and training parameters")
    inspect.add_argument("--model", required=True, metavar="PATH", help="model.tar.gz")
    inspect.set_defaults(func=_inspect)
