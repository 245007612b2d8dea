"""The recommend Lambda as the API twin runs it: its configuration, execution environments and app factory."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from starlette.types import ASGIApp

from fmrec.errors import InputError
from lambdas.recommend import app as lambda_app
from lambdas.recommend.params import OPENAPI_PATH
from lambdas.recommend.service import Recommender, recommender_from_env
from twins.api import DEFAULT_ENVIRONMENTS
from twins.api.gateway import Handler, create_app

CONFIG_ENV = "FMREC_API_TWIN_CONFIG"


@dataclass(frozen=True)
class ApiTwinConfig:
    """What a twin process needs to build its handler (passed to its workers through the environment)."""

    artifacts: str
    endpoint_url: str | None
    endpoint_name: str
    fast_path: bool = False
    log_level: str = "WARNING"
    # Lambda environments per twin process: each takes one event at a time (see twins.api.gateway.create_app).
    environments: int = DEFAULT_ENVIRONMENTS
    # The SQLite ratings store every worker process shares; "" is ratings.db beside the artifacts folder.
    ratings_db: str = ""

    def ratings_path(self) -> str:
        return self.ratings_db or str(default_ratings_db(self.artifacts))

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls, text: str) -> ApiTwinConfig:
        return cls(**json.loads(text))

    def lambda_environment(self) -> dict[str, str]:
        """The Lambda environment variables the CDK stack would set, pointed at local twins."""
        env = {
            "FMREC_ARTIFACT_DIR": self.artifacts,
            "FMREC_FAST_PATH": "1" if self.fast_path else "0",
            "FMREC_RATINGS_DB": self.ratings_path(),
        }
        if self.endpoint_url:
            env["FMREC_ENDPOINT_NAME"] = self.endpoint_name
        return env


def default_ratings_db(artifacts: str | os.PathLike[str]) -> Path:
    """ratings.db beside the serving-artifacts folder: the twin's embedded ratings store."""
    return Path(artifacts).resolve().parent / "ratings.db"


def _environment() -> Any:
    """A fresh instance of the Lambda's handler module: its own resolver, as a new execution environment."""
    spec = importlib.util.find_spec("lambdas.recommend.app")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_handlers(config: ApiTwinConfig, environments: int = 1) -> list[Handler]:
    """`environments` copies of the recommend Lambda's own handler, configured for the twin."""
    # The Recommender is thread-safe, so the environments share one: the lookup loads once per process.
    recommender = make_recommender(config)
    return [_configure(config, _environment(), recommender) for _ in range(environments)]


def make_handler(config: ApiTwinConfig) -> Handler:
    """The recommend Lambda's own handler, configured with the twin's artifacts folder and endpoint URL."""
    return _configure(config, lambda_app, make_recommender(config))


def _configure(config: ApiTwinConfig, module: Any, recommender: Recommender) -> Handler:
    module.configure(recommender)
    module.logger.setLevel(config.log_level.upper())
    return cast(Handler, module.lambda_handler)


def make_recommender(config: ApiTwinConfig) -> Recommender:
    """The Lambda's Recommender over the twin's artifacts folder, calling the endpoint twin through boto3."""
    if not Path(config.artifacts).is_dir():
        raise InputError(
            f"--artifacts {config.artifacts}: no such folder (expected a serving-artifacts folder)"
        )
    if not config.endpoint_url and not config.fast_path:
        raise InputError("give --endpoint-url (the endpoint twin) or --fast-path")
    env = dict(os.environ)
    env.pop("FMREC_RATINGS_TABLE", None)  # the twin's store is its SQLite file, never a table
    env.update(config.lambda_environment())
    client_kwargs: dict[str, Any] = {
        "region_name": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    }
    if config.endpoint_url:
        client_kwargs["endpoint_url"] = config.endpoint_url
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        # The endpoint twin does not check signatures, but botocore will not sign without some credentials.
        client_kwargs.update(aws_access_key_id="twin", aws_secret_access_key="twin")
    return recommender_from_env(env, client_kwargs)


def openapi_bytes() -> bytes:
    return OPENAPI_PATH.read_bytes()


def app_from_env() -> ASGIApp:
    """App factory for the twin's worker processes: the configuration comes from $FMREC_API_TWIN_CONFIG."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise InputError(f"${CONFIG_ENV} is not set; start the twin with `fmrec serve api`")
    config = ApiTwinConfig.from_env(text)
    return create_app(make_handlers(config, config.environments), openapi_bytes())
