"""`fmrec serve api`: the API Gateway + recommend Lambda twin (a subcommand of `fmrec serve`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec.serving.artifacts import CURRENT_KEY, MODEL_FILE
from fmrec_cli.hints import command
from twins.api import DEFAULT_ENVIRONMENTS


def register(serve_sub: Any) -> None:
    parser = serve_sub.add_parser(
        "api",
        help="an API Gateway twin running the recommend Lambda's handler",
        description=(
            "Serve the recommend API: every HTTP request becomes the REST proxy event API Gateway "
            "would send, handled by the Lambda's own handler, which calls the endpoint twin through boto3. "
            "GET /openapi.json returns the API's OpenAPI document."
        ),
    )
    parser.add_argument(
        "--artifacts",
        required=True,
        metavar="DIR",
        help=(
            "serving artifacts: current.json + VERSION/lookup/ + VERSION/model.tar.gz (docs/api.md), or a "
            "bare lookup folder with model.tar.gz beside its files"
        ),
    )
    parser.add_argument("--endpoint-url", default=None, help="the endpoint twin, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--endpoint-name", default="fmrec-endpoint", help="endpoint name (default fmrec-endpoint)"
    )
    parser.add_argument(
        "--fast-path", action="store_true", help="score from VERSION/model.tar.gz in-process, no endpoint"
    )
    parser.add_argument(
        "--ratings-db",
        default="",
        metavar="FILE",
        help="the SQLite ratings store of POST /users/{userId}/ratings, shared by every worker "
        "(default: ratings.db beside --artifacts)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--environments",
        type=int,
        default=DEFAULT_ENVIRONMENTS,
        help=f"Lambda environments per process, one event at a time each (default {DEFAULT_ENVIRONMENTS})",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the handler's log level (default WARNING)",
    )
    parser.set_defaults(func=_run)


def check_artifacts(artifacts: Path, fast_path: bool) -> None:
    """A bare lookup folder without model.tar.gz serves recommendations through the endpoint only: refuse it
    for the fast path, and say how to publish a model otherwise (similar movies need one)."""
    if (artifacts / CURRENT_KEY).is_file() or (artifacts / MODEL_FILE).is_file():
        return
    publish = command("publish", "--artifacts", "DIR", "--lookup", artifacts, "--model", "MODEL_TAR")
    if fast_path:
        raise InputError(
            f"--artifacts {artifacts}: a bare lookup folder without {MODEL_FILE}; the fast path scores with "
            f"the model: publish a version with `{publish}` and pass --artifacts DIR"
        )
    print(
        f"fmrec: warning: --artifacts {artifacts} is a bare lookup folder without {MODEL_FILE}: "
        f"/movies/ID/similar will answer 503 until a version is published; `{publish}` publishes one "
        f"(MODEL_TAR: the model.tar.gz of `fmrec train`)",
        file=sys.stderr,
    )


def _run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (uvicorn loads only when this command runs)
    from twins.api.environment import ApiTwinConfig
    from twins.api.server import serve

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0..65535")
    if args.environments < 1:
        raise InputError(f"--environments {args.environments}: expected 1 or more")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected 1 or more")
    check_artifacts(Path(args.artifacts), args.fast_path)
    level = "DEBUG" if args.verbose else args.log_level
    config = ApiTwinConfig(
        args.artifacts,
        args.endpoint_url,
        args.endpoint_name,
        args.fast_path,
        level,
        args.environments,
        ratings_db=args.ratings_db,
    )
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0
