"""`fmrec demo`: data → local pipeline → approve → endpoint + API twins → top-10 for a few users → serve."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec_cli.hints import command
from fmrec_cli.pipeline import failure_text, quiet_console, run_pipeline, write_run_report
from fmrec_cli.recommend import fetch, format_table

DEFAULT_RUNS = Path("runs")
GROUP = "fmrec-models"  # the pipeline's default model package group


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="the whole thing locally: data, pipeline, approval, serving, recommendations"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="a MovieLens folder (default: synthesize ml-100k-shaped data)"
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=DEFAULT_RUNS, help="runs, registry, serving (./runs)"
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter"
    )
    parser.add_argument("--users", default=None, help="comma list of user ids to show (default: the first 3)")
    parser.add_argument("-k", type=int, default=10, help="recommendations per user (default 10)")
    parser.add_argument(
        "--no-serve", action="store_true", help="stop the twins after printing the recommendations"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip data and pipeline: serve the newest approved model of --runs-dir (no retraining)",
    )
    parser.add_argument(
        "--api-port", type=int, default=None, help="API twin port (default 3000; any with --no-serve)"
    )
    parser.add_argument(
        "--endpoint-port", type=int, default=0, help="endpoint twin port (default: a free one)"
    )
    synth = parser.add_argument_group("synthetic data (without --data-dir)")
    synth.add_argument("--synth-users", type=int, default=943, help="users (default 943, as ml-100k)")
    synth.add_argument("--synth-items", type=int, default=1682, help="movies (default 1682, as ml-100k)")
    synth.add_argument(
        "--synth-ratings", type=int, default=100_000, help="ratings (default 100000, as ml-100k)"
    )
    synth.add_argument("--synth-seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def synthesize(args: argparse.Namespace) -> Path:
    """Synthetic data under runs/data/; the output is a function of the arguments, so a folder is reused."""
    # local import: CLI start-up (numpy loads only when this command runs)
    from fmrec.data.synth import SynthConfig, write_synth

    cfg = SynthConfig(
        users=args.synth_users, items=args.synth_items, ratings=args.synth_ratings, seed=args.synth_seed
    )
    name = f"synth-u{cfg.users}-i{cfg.items}-r{cfg.ratings}-s{cfg.seed}"
    out = args.runs_dir / "data" / name
    if (out / "SYNTHETIC.json").is_file():
        say(f"synthetic data: reusing {out}")
        return out
    say(f"synthesizing {cfg.ratings:,} ratings of {cfg.users:,} users x {cfg.items:,} movies → {out}")
    write_synth(out, cfg)
    return out


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (the registry twin loads only when this command runs)
    from twins.registry.registry import Registry

    if not 1 <= args.k <= 100:
        raise InputError(f"-k {args.k}: expected 1..100")
    users = _parse_users(args.users)
    t0 = time.perf_counter()
    registry = Registry(args.runs_dir / "registry")
    pipeline_seconds = 0.0
    if args.reuse:
        package = registry.latest_approved(GROUP)
        if package is None:
            raise InputError(
                f"--reuse: no approved model in {args.runs_dir / 'registry'}; run `fmrec demo` once first"
            )
        say(f"1-3/5 reusing the newest approved model, {package.group}/{package.version} (no retraining)")
    else:
        package, pipeline_seconds = _train_and_approve(args, registry)

    # The twins' INFO lines (a lookup loaded, a model swapped) would interrupt the tables: warnings only.
    with quiet_console(getattr(args, "verbose", False)):
        return _serve(args, registry, package, t0, pipeline_seconds, users)


def _serve(
    args: argparse.Namespace,
    registry: Any,
    package: Any,
    t0: float,
    pipeline_seconds: float,
    users: list[int],
) -> int:
    """Steps 4-5: the deployer twin publishes the newest approved version; the twins serve it."""
    # local import: CLI start-up (uvicorn, numpy and scipy load only when this command runs)
    from twins.api.server import start_in_background as start_api
    from twins.endpoint.follow import start_following
    from twins.registry.deploy import reconcile

    # The deployer twin, as on AWS after an approval: publish the newest approved version for serving.
    artifacts = args.runs_dir / "serving"
    deployed = reconcile(registry, GROUP, artifacts)
    endpoint, followed = start_following(artifacts, port=args.endpoint_port, name="fmrec-endpoint")
    api_port = args.api_port if args.api_port is not None else (0 if args.no_serve else 3000)
    try:
        api = start_api(artifacts, endpoint.url, endpoint_name="fmrec-endpoint", port=api_port)
    except BaseException:
        endpoint.stop()
        raise
    try:
        say(f"4/5 endpoint twin {endpoint.url} (serving {followed.variant}), API twin {api.url}")
        if not users and package.lookup_dir is not None:
            # local import: CLI start-up (the lookup reader loads only when this command runs)
            from fmrec.serving.lookup import read_lookup

            users = read_lookup(package.lookup_dir).user_ids[:3]
        for user in users:
            doc = fetch(f"{api.url}/users/{user}/recommendations?k={args.k}", timeout=30)
            print(format_table(doc))
            print()
        say(f"5/5 done in {time.perf_counter() - t0:.1f} s (pipeline {pipeline_seconds:.1f} s)")
        if args.no_serve:
            say(f"serve this model again without retraining: `{command('demo', '--reuse')}`")
            return 0
        hint = command("recommend", "--user", users[0] if users else 1, "--api-url", api.url)
        say(f"serving {deployed.version} until Ctrl-C: try `{hint}` in another terminal;")
        say(f"`{command('models', 'approve', 'N')}` there deploys version N here at once")
        threading.Event().wait()  # until KeyboardInterrupt
    except KeyboardInterrupt:
        say("stopping the twins")
    finally:
        api.stop()
        endpoint.stop()
    return 0


def _train_and_approve(args: argparse.Namespace, registry: Any) -> tuple[Any, float]:
    """Steps 1-3: data, the local pipeline, and approval of the model it registered."""
    data_dir = args.data_dir if args.data_dir is not None else synthesize(args)
    say("1/5 data ready")
    t_pipe = time.perf_counter()
    with quiet_console(getattr(args, "verbose", False)):
        result = run_pipeline(
            data_dir, args.param, args.runs_dir, progress=lambda m: say(f"2/5 pipeline: {m}")
        )
    pipeline_seconds = time.perf_counter() - t_pipe
    say(f"2/5 pipeline {result.status} in {pipeline_seconds:.1f} s ({result.folder})")
    if result.evaluation:
        ranking = result.evaluation["ranking"]
        for name in ("model", "popularity", "biases"):
            block = result.evaluation[name]
            ndcg = f"  NDCG@10 {ranking[name]['ndcg_at_10']:.4f}" if name in ranking else ""
            say(f"      {name:<10} AUC {block['auc']:.4f}  log loss {block['log_loss']:.4f}{ndcg}")
        lift = ranking["ndcg_at_10_lift"]
        verdict = "beats" if lift > 0 else "does not beat"
        say(f"      the model {verdict} popularity on NDCG@10 ({lift:+.1%}, {ranking['users']} users ranked)")
    report = write_run_report(result)
    if report is not None:
        say(f"      report: {report}")
    if result.status != "Succeeded" or not result.registered:
        raise FmrecError(f"the pipeline did not register a model: {failure_text(result)}")
    package = result.registered[0]
    if package.lookup_dir is None:
        raise FmrecError(f"{package.folder}: the registered package has no lookup folder")
    package = registry.set_status(package.group, package.version, "Approved")
    say(f"3/5 approved {package.group}/{package.version} (it passed the quality gate)")
    return package, pipeline_seconds


def _parse_users(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(u) for u in text.split(",") if u.strip()]
    except ValueError:
        raise InputError(f"--users {text!r}: expected a comma list of integer user ids") from None
