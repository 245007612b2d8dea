"""Search-space and objective validation: bad ranges and objectives fail before any trial starts."""

from __future__ import annotations

import pytest

from fmrec.errors import InputError
from fmrec.tuning.space import (
    DEFAULT_RANGES,
    DOCUMENTED_LIMITS,
    REQUIRED_TUNED,
    ParamRange,
    TuningError,
    build_space,
    check_static,
    parse_range,
    resolve_objective,
)


def test_default_ranges_sit_inside_documented_limits() -> None:
    names = {r.name for r in build_space()}
    assert {"num_factors", "epochs", "mini_batch_size"} <= names
    assert {f"{g}_{k}" for g in ("bias", "linear", "factors") for k in ("lr", "wd")} <= names
    for r in DEFAULT_RANGES:
        _, lo, hi = DOCUMENTED_LIMITS[r.name]
        assert lo <= r.low < r.high <= hi


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("epochs=0:50", "outside FM's documented limits [1, 1000]"),
        ("epochs=1:2000", "outside FM's documented limits [1, 1000]"),
        ("mini_batch_size=50:1000", "outside FM's documented limits [100, 10000]"),
        ("factors_lr=1e-9:0.1:Logarithmic", "outside FM's documented limits"),
        ("bias_wd=0.1:1000", "outside FM's documented limits"),
        ("epochs=10:5", "min 10 must be below max 5"),
        ("epochs=1.5:5", "whole numbers"),
        ("predictor_type=1:2", "not a tunable FM hyperparameter"),
        ("epochs=a:b", "are not numbers"),
        ("epochs", "expected name=min:max"),
        ("factors_lr=0.01:0.1:Cubic", "scaling 'Cubic'"),
    ],
)
def test_bad_range_is_rejected_with_field_and_limits(text: str, fragment: str) -> None:
    with pytest.raises(TuningError, match=None) as info:
        parse_range(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, InputError)


def test_override_replaces_default_range_and_is_validated() -> None:
    space = build_space([parse_range("epochs=2:4")])
    assert next(r for r in space if r.name == "epochs") == ParamRange("epochs", "int", 2, 4, "Auto")
    with pytest.raises(TuningError, match="num_factors"):
        build_space([ParamRange("num_factors", "int", 0, 8)])


def test_default_space_covers_the_required_and_a_space_is_never_empty() -> None:
    assert set(REQUIRED_TUNED) <= {r.name for r in build_space()}
    without = build_space(base=[r for r in DEFAULT_RANGES if r.name != "num_factors"])
    assert "num_factors" not in {r.name for r in without}  # then num_factors is a static hyperparameter
    with pytest.raises(TuningError, match="no range to tune"):
        build_space(base=())


def test_static_and_tuned_at_once_is_an_error() -> None:
    with pytest.raises(TuningError, match="epochs: set as static values and also tuned"):
        check_static({"epochs": "5"}, DEFAULT_RANGES)


def test_objective_must_be_emitted_by_the_predictor_type() -> None:
    assert resolve_objective("binary_classifier").metric_name == "test:binary_classification_cross_entropy"
    assert resolve_objective("regressor").direction == "Minimize"
    acc = resolve_objective("binary_classifier", "test:binary_classification_accuracy")
    assert acc.direction == "Maximize"
    with pytest.raises(TuningError, match="emitted only by a regressor, not by a binary_classifier"):
        resolve_objective("binary_classifier", "test:rmse")
    with pytest.raises(TuningError, match="emitted only by a binary_classifier, not by a regressor"):
        resolve_objective("regressor", "test:binary_classification_accuracy")
    with pytest.raises(TuningError, match="not a metric FM emits"):
        resolve_objective("binary_classifier", "validation:auc")
