"""`fmrec deploy preflight`: checks the target account and region before `cdk deploy` (docs/deploy.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmrec.deploy.layers import NUMPY_LAYER_KEY, numpy_layer_override
from fmrec.deploy.preflight import DEFAULT_QUALIFIER, QUALIFIER_KEY, run_preflight
from fmrec.deploy.stage import load_stage, read_cdk_context
from fmrec.errors import InputError

REPO_CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def register(sub: Any) -> None:
    parser = sub.add_parser("deploy", help="checks before deploying to AWS")
    dsub = parser.add_subparsers(dest="deploy_command", metavar="SUBCOMMAND", required=True)
    p = dsub.add_parser(
        "preflight",
        help="check the account and region a stage deploys to (needs AWS credentials)",
        description="Checks what `cdk synth` cannot see offline: the Powertools and AWS SDK for pandas "
        "layers resolve in the stage's region, the CDK bootstrap version, the account's API Gateway "
        "CloudWatch role, and the SageMaker instance quotas the stage needs. Exits 1 when a check fails, "
        "printing what to do.",
    )
    p.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CDK context, as for `cdk deploy` (fmrec:stage=dev, fmrec:numpy_layer_arn=<arn>)",
    )
    p.add_argument(
        "--cdk-json",
        type=Path,
        default=None,
        help="the app's cdk.json (default: ./cdk.json, else the repo's)",
    )
    p.add_argument("--profile", default=None, help="AWS profile (default: the usual credential chain)")
    p.set_defaults(func=_run)


def parse_context(pairs: list[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"-c {pair!r}: expected KEY=VALUE, e.g. -c fmrec:stage=dev")
        context[key] = value
    return context


def _run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (boto3 loads only when this command runs)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    path = args.cdk_json or (Path("cdk.json") if Path("cdk.json").is_file() else REPO_CDK_JSON)
    context = {**read_cdk_context(path), **parse_context(args.context)}
    config = load_stage(context)
    override = numpy_layer_override(config, context.get(NUMPY_LAYER_KEY))
    session = boto3.Session(profile_name=args.profile, region_name=config.region)
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=config.region)
        return clients[service]

    print(f"preflight of stage {config.stage} in {config.region} ({path})")
    try:
        checks = run_preflight(
            config, client, str(context.get(QUALIFIER_KEY) or DEFAULT_QUALIFIER), numpy_layer_arn=override
        )
    except NoCredentialsError:
        raise InputError(
            "no AWS credentials: set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, for the account you deploy to, then run it again"
        ) from None
    except (BotoCoreError, ClientError) as exc:
        raise InputError(f"AWS refused a preflight call: {exc}") from None
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.found}")
        if not check.ok:
            print(f"      fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    print(
        f"{len(checks) - failed} of {len(checks)} checks passed"
        + (f"; fix the {failed} above" if failed else "")
    )
    return 1 if failed else 0
