"""CDK test fixtures: the session's offline synths (tests/support/cdk.py), run side by side, once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cdk import SYNTHS, Assembly, cdk_json_context, synth_side_by_side

ALWAYS = ("dev", "prod")


@pytest.fixture(scope="session")
def _synths(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Assembly]:
    """dev and prod, plus each other synth that a collected test asks for by its fixture name (its SYNTHS
    name with '_' for '-'), all started together so that they share the wait."""
    wanted = {fixture for item in request.session.items for fixture in getattr(item, "fixturenames", ())}
    names = [*ALWAYS, *(n for n in SYNTHS if n not in ALWAYS and n.replace("-", "_") in wanted)]
    return synth_side_by_side([SYNTHS[n] for n in names], tmp_path_factory.mktemp("cdk"))


@pytest.fixture(scope="session")
def assemblies(_synths: dict[str, Assembly]) -> dict[str, Assembly]:
    """dev by `python app.py` and prod by the npm CLI's `cdk synth -c fmrec:stage=prod`."""
    return {name: _synths[name] for name in ALWAYS}


@pytest.fixture(scope="session")
def dev(assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies["dev"]


@pytest.fixture(scope="session")
def prod(assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies["prod"]


@pytest.fixture(scope="session")
def numpy_override(_synths: dict[str, Assembly]) -> Assembly:
    """dev by the npm CLI with `-c fmrec:numpy_layer_arn=<OTHER_NUMPY_LAYER>`."""
    return _synths["numpy-override"]


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    return cdk_json_context()
