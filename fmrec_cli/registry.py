"""`fmrec models list|approve|reject`: the local Model Registry twin, and the deployer twin on approval."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmrec_cli.hints import command

DEFAULT_REGISTRY = Path("runs") / "registry"


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="list, approve or reject registered model versions")
    msub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    for name, help_text in (
        ("list", "list model package versions with status, metrics (NDCG@10 first) and the one serving"),
        ("approve", "approve a version; the newest approved one is then published for serving"),
        ("reject", "reject a version; serving falls back to the newest still approved"),
    ):
        p = msub.add_parser(name, help=help_text)
        p.add_argument(
            "--registry", type=Path, default=DEFAULT_REGISTRY, help="registry folder (runs/registry)"
        )
        p.add_argument(
            "--group", default=None if name == "list" else "fmrec-models", help="model package group"
        )
        p.add_argument(
            "--serving",
            type=Path,
            default=None,
            help="serving-artifacts folder the deployer twin publishes to (default: beside the registry, "
            "runs/serving)",
        )
        if name != "list":
            p.add_argument("version", type=int, help="the version number")
            p.add_argument(
                "--no-deploy",
                action="store_true",
                help="only change the status (on AWS the approval event always deploys)",
            )
        p.set_defaults(func=_run, models_command=name)


def _value(block: Any, key: str) -> float | None:
    entry = (block or {}).get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _metric_summary(doc: Any) -> str:
    doc = doc or {}
    parts = []
    ndcg = _value(doc.get("ranking_metrics"), "ndcg_at_10")
    if ndcg is not None:
        pop = _value(doc.get("ranking_baseline_metrics"), "popularity_ndcg_at_10")
        parts.append(f"ndcg_at_10={ndcg:.4f}" + (f" (popularity {pop:.4f})" if pop is not None else ""))
    metrics = doc.get("binary_classification_metrics") or doc.get("regression_metrics") or {}
    parts += [f"{k}={v['value']:.4f}" for k, v in metrics.items() if isinstance(v, dict) and "value" in v]
    return " ".join(parts)


def _serving_dir(args: argparse.Namespace) -> Path:
    return args.serving if args.serving is not None else args.registry.parent / "serving"


def _run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the registry and deployer twins load only when this command runs)
    from twins.registry.deploy import published_version, reconcile
    from twins.registry.registry import Registry

    registry = Registry(args.registry)
    serving = _serving_dir(args)
    if args.models_command == "list":
        packages = registry.list(args.group)
        if not packages:
            print(f"no model packages in {args.registry}")
        live = published_version(serving)
        for p in packages:
            created = p.doc.get("CreationTime", "")
            mark = "*" if live == f"v{p.version}" else " "
            summary = _metric_summary(p.doc.get("ModelMetrics"))
            print(f"{mark} {p.group}/{p.version}  {p.status:<22} {created}  {summary}")
        if live is not None:
            print(f"* serving: {serving / 'current.json'} publishes {live}")
        return 0
    status = "Approved" if args.models_command == "approve" else "Rejected"
    package = registry.set_status(args.group, args.version, status)
    print(f"{package.group}/{package.version}: {package.status}")
    if args.no_deploy:
        return 0
    done = reconcile(registry, args.group, serving)
    if done.action == "no approved package":
        print(f"deployer: no approved version in {args.group}; {serving} is left as it was")
    elif done.action == "unchanged":
        print(f"deployer: {done.version} (the newest approved) is already published in {serving}")
    else:
        print(f"deployer: published {done.version} (the newest approved) in {serving}")
        print(
            f"  the endpoint twin serves it from its next request if it follows the folder: "
            f"{command('serve', 'endpoint', '--artifacts', serving)}"
        )
    return 0
