"""`fmrec serve endpoint|api`: the local twins of the SageMaker endpoint and of the recommend API."""

from __future__ import annotations

import argparse
from typing import Any

from fmrec.errors import InputError
from fmrec_cli import serve_api


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run a local twin of a serving component")
    serve_sub = parser.add_subparsers(dest="serve_command", metavar="SERVICE", required=True)

    endpoint = serve_sub.add_parser(
        "endpoint",
        help="a SageMaker real-time endpoint twin serving FM model.tar.gz artifacts",
        description=(
            "Serve FM model.tar.gz artifacts over SageMaker's inference protocol: GET /ping, "
            "POST /invocations (container contract) and POST /endpoints/NAME/invocations (the SageMaker "
            "Runtime API that boto3's sagemaker-runtime client calls; point it here with endpoint_url= or "
            "$AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME). Several --name may be given, each with its own --model "
            "and --variant, or sharing a single one."
        ),
    )
    endpoint.add_argument("--model", action="append", default=[], metavar="PATH", help="model.tar.gz")
    endpoint.add_argument(
        "--artifacts",
        metavar="DIR",
        help="instead of --model: serve the version DIR/current.json publishes (e.g. runs/serving), and "
        "swap to each version published later (`fmrec models approve` publishes there)",
    )
    endpoint.add_argument(
        "--name", action="append", default=[], metavar="NAME", help="endpoint name (default fmrec-endpoint)"
    )
    endpoint.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="V",
        help="production variant reported in X-Amzn-Invoked-Production-Variant (default AllTraffic)",
    )
    endpoint.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    endpoint.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    endpoint.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: one per core)"
    )
    endpoint.add_argument("--access-log", action="store_true", help="log every request")
    endpoint.set_defaults(func=_run_endpoint)

    serve_api.register(serve_sub)


def _run_endpoint(args: argparse.Namespace) -> int:
    # local import: CLI start-up (uvicorn, numpy and scipy load only when this command runs)
    from twins.endpoint.server import build_specs, serve

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected 1 or more")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0..65535")
    if bool(args.model) == bool(args.artifacts):
        raise InputError("fmrec serve endpoint: give --model PATH (repeatable) or --artifacts DIR, not both")
    if args.artifacts:
        # local import: CLI start-up (uvicorn, numpy and scipy load only when this command runs)
        from twins.endpoint.follow import serve_following

        if args.variant or len(args.name) > 1:
            raise InputError("--artifacts: the variant is the published version; give at most one --name")
        serve_following(
            args.artifacts,
            *args.name,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="debug" if args.verbose else "info",
            access_log=args.access_log,
        )
        return 0
    specs = build_specs(args.model, args.name, args.variant)
    serve(
        specs,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="debug" if args.verbose else "info",
        access_log=args.access_log,
    )
    return 0
