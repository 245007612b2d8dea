"""`fmrec models list|approve|reject`: the local Model Registry twin."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_REGISTRY = Path("runs") / "registry"


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="list, approve or reject registered model versions")
    msub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    for name, help_text in (
        ("list", "list model package versions with status and metrics"),
        ("approve", "set a version's status to Approved"),
        ("reject", "set a version's status to Rejected"),
    ):
        p = msub.add_parser(name, help=help_text)
        p.add_argument(
            "--registry", type=Path, default=DEFAULT_REGISTRY, help="registry folder (runs/registry)"
        )
        p.add_argument(
            "--group", default=None if name == "list" else "fmrec-models", help="model package group"
        )
        if name != "list":
            p.add_argument("version", type=int, help="the version number")
        p.set_defaults(func=_run, models_command=name)


def _metric_summary(doc: Any) -> str:
    metrics = (doc or {}).get("binary_classification_metrics") or (doc or {}).get("regression_metrics") or {}
    return " ".join(
        f"{k}={v['value']:.4f}" for k, v in metrics.items() if isinstance(v, dict) and "value" in v
    )


def _run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the registry twin loads only when this command runs)
    from twins.registry.registry import Registry

    registry = Registry(args.registry)
    if args.models_command == "list":
        packages = registry.list(args.group)
        if not packages:
            print(f"no model packages in {args.registry}")
        for p in packages:
            created = p.doc.get("CreationTime", "")
            summary = _metric_summary(p.doc.get("ModelMetrics"))
            print(f"{p.group}/{p.version}  {p.status:<22} {created}  {summary}")
        return 0
    status = "Approved" if args.models_command == "approve" else "Rejected"
    package = registry.set_status(args.group, args.version, status)
    print(f"{package.group}/{package.version}: {package.status}")
    return 0
