"""What `fmrec deploy preflight` checks is what the synthesized templates will ask of the account."""

from __future__ import annotations

import pytest

from fmrec.deploy.layers import PANDAS_LAYER_PARAMETER, POWERTOOLS_LAYER_PARAMETER
from fmrec.deploy.preflight import DEFAULT_QUALIFIER, MIN_BOOTSTRAP_VERSION
from tests.support.cdk import Assembly


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_preflight_checks_the_templates_bootstrap_rule_and_parameters(
    assemblies: dict[str, Assembly], stage: str
) -> None:
    for name, template in assemblies[stage].templates.items():
        parameters = template["Parameters"]
        assert parameters["BootstrapVersion"]["Default"] == f"/cdk-bootstrap/{DEFAULT_QUALIFIER}/version"
        (assertion,) = template["Rules"]["CheckBootstrapVersion"]["Assertions"]
        refused = assertion["Assert"]["Fn::Not"][0]["Fn::Contains"][0]
        assert refused == [str(v) for v in range(1, MIN_BOOTSTRAP_VERSION)], name
        ssm = {p["Default"] for k, p in parameters.items() if k != "BootstrapVersion"}
        if name.endswith("Api"):
            assert ssm == {POWERTOOLS_LAYER_PARAMETER, PANDAS_LAYER_PARAMETER}
