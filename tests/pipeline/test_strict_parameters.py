"""Pipeline parameters read strictly, negative values reach the range checks (issue 23 items 10, 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import InputError
from fmrec.features.options import build_arg_parser, config_from_args
from pipeline.steps import evaluate as evaluate_step
from pipeline.steps.preprocess import check_arguments
from twins.pipeline.runner import ParameterError, parse_parameters, run_local
from twins.registry.registry import Registry


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Epochs": "0_1"}, "Epochs=0_1: expected integer"),
        ({"LabelThreshold": "4_0"}, "LabelThreshold=4_0: expected float"),
        ({"LabelThreshold": "inf"}, "LabelThreshold=inf: expected float"),
        ({"LabelThreshold": "1e999"}, "LabelThreshold=1e999: expected float"),
        (
            {"NegativesPerPositive": "\u0664"},
            "NegativesPerPositive=\u0664: expected integer",
        ),  # Arabic-Indic 4
    ],
)
def test_underscores_unicode_digits_and_non_finite_values_are_refused(
    local_definition: dict[str, Any], params: dict[str, str], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_parameters(local_definition, params)


def test_plain_decimal_values_are_read(local_definition: dict[str, Any]) -> None:
    values = parse_parameters(local_definition, {"Epochs": "+07", "LabelThreshold": " 3.5e0 "})
    assert (values["Epochs"], values["LabelThreshold"]) == (7, 3.5)


def _run(definition: dict[str, Any], root: Path, **params: str) -> Any:
    return run_local(
        definition, runs_root=root / "pipeline", registry=Registry(root / "registry"), overrides=params
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"NegativeExponent": "-1e-5"}, r"negative exponent -1e-05: expected a number in \[0, 1\]"),
        ({"NegativeExponent": "-0.5"}, r"negative exponent -0.5: expected a number in \[0, 1\]"),
        ({"LabelThreshold": "-1e308"}, r"--threshold -1e\+308: expected a rating from 0.5 to 5"),
        ({"LabelThreshold": "5.5"}, r"--threshold 5.5: expected a rating from 0.5 to 5"),
        (
            {"NegativesPerPositive": "0"},
            "negatives per positive 0: the ranking objective would have no negative",
        ),
    ],
)
def test_values_fail_with_the_range_message_before_any_step(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        _run(local_definition, tmp_path, **{"InputDataUrl": str(tiny_data), **params})
    assert not (tmp_path / "pipeline").exists() or not any((tmp_path / "pipeline").iterdir())


def test_a_negative_option_value_is_a_value_not_an_option() -> None:
    cfg = check_arguments(["--threshold", "4.5", "--objective", "rating", "--negatives", "0"])
    assert cfg.threshold == 4.5
    with pytest.raises(InputError, match=r"--threshold -1e\+308: expected a rating from 0.5 to 5"):
        check_arguments(["--threshold", "-1e308"])
    with pytest.raises(InputError, match=r"negative exponent -1e-05: expected a number in \[0, 1\]"):
        check_arguments(["--negative-exponent", "-1e-5"])
    assert evaluate_step.parse_args(["--objective", "rating", "--threshold", "-1e308"]).threshold == -1e308


def test_zero_negatives_is_accepted_when_below_threshold_ratings_are_the_negatives() -> None:
    cfg = check_arguments(["--negatives", "0", "--positives", "liked", "--below-threshold-negatives", "true"])
    assert cfg.negatives_per_positive == 0


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "0.4", "5.01"])
def test_preprocess_refuses_a_threshold_off_the_rating_scale(value: str) -> None:
    args = build_arg_parser().parse_args([f"--threshold={value}"])
    with pytest.raises(InputError, match=r"--threshold .*: expected a rating from 0.5 to 5"):
        config_from_args(args)
    with pytest.raises(InputError, match=r"--threshold .*: expected a rating from 0.5 to 5"):
        check_arguments(["--threshold", value])
