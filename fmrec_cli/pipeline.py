"""`fmrec pipeline run --local | definition`: run the SageMaker Pipeline definition here, or print it."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fmrec.errors import InputError

DEFAULT_RUNS = Path("runs")
LOCAL_BUCKET = "fmrec-local"
LOCAL_ARGUMENTS = {
    "artifact_bucket": LOCAL_BUCKET,
    "role_arn": "arn:aws:iam::000000000000:role/fmrec-local",
    "code_uri": f"s3://{LOCAL_BUCKET}/code",
}


def register(sub: Any) -> None:
    parser = sub.add_parser("pipeline", help="run the pipeline locally or print its definition")
    psub = parser.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND", required=True)
    run = psub.add_parser("run", help="execute the pipeline definition step by step on this machine")
    run.add_argument(
        "--local", action="store_true", required=True, help="run with the local twins (required)"
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        help="MovieLens-format folder to run on (required unless --param InputDataUrl=/absolute/path)",
    )
    run.add_argument(
        "--ratings-db",
        type=Path,
        metavar="FILE",
        help="merge the ratings stored by the API twin (its SQLite file) with --data-dir's: exported into "
        "RUNS_DIR/inputs/ beside links to --data-dir's files, as extra-ratings/ratings.csv",
    )
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter"
    )
    run.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS, help="where runs and the registry go")
    run.add_argument("--group", default="fmrec-models", help="model package group")
    run.set_defaults(func=run_command)
    show = psub.add_parser("definition", help="print the definition JSON (CDK placeholders by default)")
    show.add_argument("--region", default="us-east-1")
    show.add_argument("--local", action="store_true", help="with the local runner's values instead")
    show.add_argument("--out", type=Path, help="write to this file instead of stdout")
    show.set_defaults(func=definition_command)


def local_definition(group: str = "fmrec-models") -> dict[str, Any]:
    return _build("us-east-1", LOCAL_ARGUMENTS, group)


def _build(region: str, values: dict[str, str], group: str = "fmrec-models") -> dict[str, Any]:
    # local import: CLI start-up (the definition, numpy, scipy and the SageMaker SDK load only when needed)
    from pipeline.definition import get_pipeline
    from pipeline.tuning import TuningOptions

    return get_pipeline(
        region=region,
        artifact_bucket=values["artifact_bucket"],
        role_arn=values["role_arn"],
        code_uri=values["code_uri"],
        model_package_group_name=group,
        tuning=TuningOptions(),  # the optional tuning branch, off unless --param UseTuning=true
    )


def run_pipeline(
    data_dir: Path | None,
    params: list[str],
    runs_dir: Path,
    group: str = "fmrec-models",
    progress: Any = None,
    ratings_db: Path | None = None,
) -> Any:
    """Build the definition with local values and run it; returns the runner's RunResult."""
    # local import: CLI start-up (the pipeline runner with the trainer, numpy and numba load only when needed)
    from twins.pipeline.runner import parse_parameters, run_local, split_assignments
    from twins.registry.registry import Registry

    shown = progress or (lambda msg: print(f"[pipeline] {msg}", file=sys.stderr, flush=True))

    def say(message: str) -> None:
        if "pipeline failed:" not in message:  # the caller prints the reason once, after the run
            shown(message)

    overrides = split_assignments(params)
    if ratings_db is not None and data_dir is None:
        raise InputError("--ratings-db needs --data-dir (the base ratings the stored ones are merged with)")
    if data_dir is None and "InputDataUrl" not in overrides:
        # The definition's InputDataUrl default is the bucket's s3:// data prefix, which only SageMaker reads.
        raise InputError(
            "pass --data-dir DIR, the MovieLens-format folder to run on (`fmrec data synth --out data/synth` "
            "writes a synthetic one; `fmrec data fetch ml-100k --out data/` downloads the real one)"
        )
    if data_dir is not None:
        if not data_dir.is_dir():
            raise InputError(f"--data-dir {data_dir}: not a folder")
        if "InputDataUrl" in overrides:
            raise InputError("--data-dir and --param InputDataUrl=... both set the input; pass one")
        overrides["InputDataUrl"] = str(data_dir.resolve())
        if ratings_db is not None:
            merged = with_stored_ratings(data_dir, ratings_db, runs_dir / "inputs")
            overrides["InputDataUrl"] = str(merged)
            say(f"merging the stored ratings of {ratings_db} (input {merged})")
    say("building the pipeline definition ...")
    definition = local_definition(group)
    parse_parameters(definition, overrides)  # fail on a bad --param before anything else
    return run_local(
        definition,
        runs_root=runs_dir / "pipeline",
        registry=Registry(runs_dir / "registry"),
        overrides=overrides,
        progress=say,
    )


def with_stored_ratings(data_dir: Path, ratings_db: Path, inputs: Path) -> Path:
    """A new input folder: links to data_dir's entries, and the store's ratings as extra-ratings/ (the
    folder preprocess merges, fmrec.ratings.merge); data_dir's own extra-ratings/ is kept under it."""
    # local import: CLI start-up (the stores load only when this command runs)
    from fmrec.ratings.export import EXTRA_FOLDER
    from fmrec_cli.ratings import export_ratings

    folder = inputs / time.strftime("%Y%m%dT%H%M%S") / data_dir.name
    if folder.exists():
        folder = folder.with_name(f"{data_dir.name}-{time.time_ns()}")
    folder.mkdir(parents=True)
    for entry in sorted(data_dir.iterdir()):
        target = folder / EXTRA_FOLDER / "base" if entry.name == EXTRA_FOLDER else folder / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    export_ratings(str(ratings_db), None, folder / EXTRA_FOLDER / "ratings-db")
    return folder


@contextlib.contextmanager
def quiet_console(verbose: bool = False) -> Iterator[None]:
    """Console shows warnings only while the pipeline runs (unless -v); each step's log is in its folder."""
    saved = [] if verbose else [(h, h.level) for h in logging.getLogger().handlers]
    for handler, _ in saved:
        handler.setLevel(max(handler.level, logging.WARNING))
        handler.addFilter(_no_fail_step)
    try:
        yield
    finally:
        for handler, level in saved:
            handler.setLevel(level)
            handler.removeFilter(_no_fail_step)


def _no_fail_step(record: logging.LogRecord) -> bool:
    """Drop the runner's log line of a Fail step: the command prints the gate's reason itself, once."""
    return not (record.name == "fmrec.pipeline" and record.getMessage().startswith("Fail step"))


def failure_text(result: Any) -> str:
    """Why the run failed: the gate's checks of the run's objective, rounded, or the failed step's error."""
    if result.evaluation and "Quality gate failed" in str(result.failure_reason):
        # local import: CLI start-up (the definition's gate table loads the SageMaker SDK only when needed)
        from pipeline.gate_report import gate_summary

        parameters = _run_parameters(result)
        objective = str(parameters.get("Objective", result.evaluation.get("objective", "ranking")))
        return gate_summary(result.evaluation, objective, parameters)
    return str(result.failure_reason)


def _run_parameters(result: Any) -> dict[str, Any]:
    try:
        doc = json.loads((result.folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(doc.get("parameters") or {})


def write_run_report(result: Any) -> Path | None:
    """runs/pipeline/<run id>/report.html: the evaluation report headed by the run's facts and gate."""
    # local import: CLI start-up (matplotlib and numpy load with the report module only when needed)
    from fmrec.evaluation.report import run_report_html
    from fmrec.io_utils import atomic_write_text

    source = next(iter(sorted(result.folder.glob("s3/*/pipeline/*/evaluate*/evaluation/report.html"))), None)
    if source is None or not result.evaluation:
        return None
    parameters = _run_parameters(result)
    objective = str(parameters.get("Objective", result.evaluation.get("objective", "")))
    stamp = result.run_id.split("-", 1)[0]
    date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]} UTC"
    hp = result.evaluation.get("hyperparameters") or {}
    registered = ", ".join(f"{p.group}/{p.version} ({p.status})" for p in result.registered)
    gate = (
        failure_text(result) if result.status != "Succeeded" else _gate_passed(result, objective, parameters)
    )
    header = [
        ("run id", result.run_id),
        ("date", date),
        ("data", str(parameters.get("InputDataUrl", ""))),
        ("objective", objective),
        ("hyperparameters", " ".join(f"{k}={v}" for k, v in sorted(hp.items()))),
        ("model version", registered or "not registered"),
        ("gate", gate),
        (
            "status",
            f"{result.status}" + (f": {result.failure_reason}" if result.status != "Succeeded" else ""),
        ),
    ]
    out = result.folder / "report.html"
    atomic_write_text(out, run_report_html(header, source.read_text(encoding="utf-8")))
    out.chmod(0o644)  # a report is for reading: not the 0600 of a temporary file
    return out


def _gate_passed(result: Any, objective: str, parameters: dict[str, Any]) -> str:
    # local import: CLI start-up (the definition's gate table loads the SageMaker SDK only when needed)
    from pipeline.gate_report import gate_summary

    return gate_summary(result.evaluation, objective, parameters)


def run_command(args: argparse.Namespace) -> int:
    with quiet_console(getattr(args, "verbose", False)):
        result = run_pipeline(
            args.data_dir, args.param, args.runs_dir, args.group, ratings_db=args.ratings_db
        )
    print(f"run {result.run_id}: {result.status}  ({result.folder})")
    if result.evaluation:
        for name in ("model", "popularity", "biases"):
            block = result.evaluation.get(name, {})
            print(f"  {name:<10} " + "  ".join(f"{k} {v:.4f}" for k, v in block.items()))
        ranking = result.evaluation.get("ranking", {})
        if ranking:
            sampled = f" (sampled of {ranking['users_total']})" if ranking.get("sampled") else ""
            print(f"  ranking at {ranking['k']}, {ranking['users']} users{sampled}:")
            for name in ("model", "popularity"):
                print(f"    {name:<10} " + "  ".join(f"{k} {v:.4f}" for k, v in ranking[name].items()))
    for package in result.registered:
        print(f"registered {package.arn} status {package.status} ({package.folder})")
    report = write_run_report(result)
    if report is not None:
        print(f"report: {report}")
    if result.status != "Succeeded":
        print(f"fmrec: pipeline failed: {failure_text(result)}", file=sys.stderr)
        return 1
    return 0


def definition_command(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the definition, numpy, scipy and the SageMaker SDK load only when needed)
    from pipeline.definition import CDK_ARGUMENTS

    text = json.dumps(_build(args.region, LOCAL_ARGUMENTS if args.local else CDK_ARGUMENTS), indent=2)
    if args.out:
        # local import: CLI start-up (fmrec.io_utils loads only when this command runs)
        from fmrec.io_utils import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    else:
        print(text)
    return 0
