"""`fmrec runs list|compare|clean`: the local pipeline runs under runs/pipeline/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_RUNS = Path("runs")


def register(sub: Any) -> None:
    parser = sub.add_parser("runs", help="list, compare or remove local pipeline runs (runs/pipeline/)")
    rsub = parser.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    show = rsub.add_parser("list", help="every run: status, NDCG@10 beside popularity's, AUC, size on disk")
    compare = rsub.add_parser("compare", help="runs side by side: the parameters that differ, then figures")
    compare.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids (a unique prefix is enough)")
    clean = rsub.add_parser("clean", help="remove all finished runs but the newest N")
    clean.add_argument("--keep", type=int, required=True, metavar="N", help="newest finished runs to keep")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    for p in (show, compare, clean):
        p.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS, help="runs folder (./runs)")
        p.set_defaults(func=run)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the runs module loads only when this command runs)
    from twins.pipeline.runs import clean, differing_parameters, disk_bytes, find_run, list_runs

    pipeline_dir = args.runs_dir / "pipeline"
    if args.runs_command == "list":
        runs = list_runs(pipeline_dir)
        if not runs:
            print(f"no runs in {pipeline_dir}")
        for r in runs:
            f = r.figures()
            ndcg = (
                f"NDCG@10 {f['model ndcg_at_10']:.4f} (popularity {f['popularity ndcg_at_10']:.4f})"
                if "model ndcg_at_10" in f
                else "no evaluation"
            )
            auc = f"  AUC {f['model auc']:.4f}" if "model auc" in f else ""
            registered = " ".join(
                a.rsplit("/", 2)[-2] + "/" + a.rsplit("/", 1)[-1] for a in r.doc.get("registered", [])
            )
            print(f"{r.run_id}  {r.status:<9} {ndcg}{auc}  {_mb(disk_bytes(r.folder))}  {registered}")
        return 0
    if args.runs_command == "compare":
        runs = [find_run(pipeline_dir, i) for i in args.run_ids]
        width = max(28, *(len(r.run_id) for r in runs))
        print(f"{'':<24} " + " ".join(f"{r.run_id:>{width}}" for r in runs))
        print(f"{'status':<24} " + " ".join(f"{r.status:>{width}}" for r in runs))
        for name, values in differing_parameters(runs).items():
            print(f"{name:<24} " + " ".join(f"{v!s:>{width}}" for v in values))
        keys = sorted({k for r in runs for k in r.figures()})
        for key in keys:
            cells = [r.figures().get(key) for r in runs]
            print(f"{key:<24} " + " ".join(f"{'-' if c is None else f'{c:.4f}':>{width}}" for c in cells))
        return 0
    removed = clean(pipeline_dir, args.keep, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r, size in removed:
        print(f"{verb} {r.run_id} ({_mb(size)})")
    print(f"{verb} {len(removed)} run(s), {_mb(sum(s for _, s in removed))}; kept the newest {args.keep}")
    return 0
