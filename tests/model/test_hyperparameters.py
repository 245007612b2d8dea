"""Hyperparameter contract: defaults, string parsing and the messages for bad values."""

from __future__ import annotations

import pytest

from fmrec.model.hyperparameters import (
    HYPERPARAMETERS,
    RECOMMENDED,
    TUNABLE_RANGES,
    HyperparameterError,
    HyperParameters,
    parse_hyperparameters,
)

BASE = {"feature_dim": "2625", "num_factors": "64", "predictor_type": "binary_classifier"}


def test_defaults_match_the_contract() -> None:
    hp = parse_hyperparameters(BASE)
    assert hp == HyperParameters(feature_dim=2625, num_factors=64, predictor_type="binary_classifier")
    expected = {
        "epochs": 1,
        "mini_batch_size": 1000,
        "bias_lr": 0.1,
        "linear_lr": 0.001,
        "factors_lr": 0.0001,
        "bias_wd": 0.01,
        "linear_wd": 0.001,
        "factors_wd": 0.00001,
        "bias_init_sigma": 0.01,
        "linear_init_sigma": 0.01,
        "factors_init_sigma": 0.001,
        "bias_init_method": "normal",
        "clip_gradient": None,
        "eps": None,
        "rescale_grad": None,
    }
    for name, value in expected.items():
        assert getattr(hp, name) == value, name
        spec_default = HYPERPARAMETERS[name].default
        assert (spec_default is None) == (value is None)
    assert len(HYPERPARAMETERS) == 3 + 2 + 3 + 3 * 6  # required, epochs/batch, clip/eps/rescale, 6 per group


def test_string_values_parse() -> None:
    hp = parse_hyperparameters(
        {
            **BASE,
            "epochs": "100",
            "mini_batch_size": 200,
            "factors_lr": "1e-3",
            "linear_init_method": "uniform",
            "linear_init_scale": "0.05",
            "bias_init_method": "constant",
            "bias_init_value": "-0.5",
            "clip_gradient": "5",
            "_tuning_objective_metric": "test:rmse",
        }
    )
    assert (hp.epochs, hp.mini_batch_size, hp.factors_lr) == (100, 200, 1e-3)
    assert (hp.linear_init_scale, hp.bias_init_value, hp.clip_gradient) == (0.05, -0.5, 5.0)
    assert hp.to_strings()["epochs"] == "100"
    assert parse_hyperparameters(hp.to_strings()) == hp


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        (
            {"learning_rate": "0.1"},
            r"learning_rate: not a Factorization Machines hyperparameter; expected one of",
        ),
        (
            {"predictor_type": "multiclass_classifier"},
            r"predictor_type: 'multiclass_classifier' is not allowed; "
            r"expected one of binary_classifier, regressor",
        ),
        ({"epochs": "0"}, r"epochs: 0 is out of range; expected an integer >= 1"),
        ({"epochs": "1.5"}, r"epochs: '1.5' is not an integer"),
        ({"num_factors": "-3"}, r"num_factors: -3 is out of range"),
        ({"bias_lr": "fast"}, r"bias_lr: 'fast' is not a finite number; expected a number >= 0"),
        ({"factors_wd": "-1e-3"}, r"factors_wd: -1e-3 is out of range"),
        ({"linear_lr": "nan"}, r"linear_lr: 'nan' is not a finite number"),
        ({"eps": "0"}, r"eps: 0 is out of range; expected a number > 0"),
        (
            {"factors_init_method": "xavier"},
            r"factors_init_method: 'xavier' is not allowed; "
            r"expected one of normal, uniform, constant",
        ),
        (
            {"factors_init_method": "uniform"},
            r"factors_init_scale: required when factors_init_method is uniform",
        ),
        ({"bias_init_method": "constant"}, r"bias_init_value: required when bias_init_method is constant"),
        ({"mini_batch_size": True}, r"mini_batch_size: True is a bool"),
    ],
)
def test_bad_values_name_the_hyperparameter(changes: dict[str, object], pattern: str) -> None:
    with pytest.raises(HyperparameterError, match=pattern):
        parse_hyperparameters({**BASE, **changes})


def test_missing_required() -> None:
    with pytest.raises(HyperparameterError, match=r"feature_dim, predictor_type: required but not given"):
        parse_hyperparameters({"num_factors": "8"})


def test_tunable_ranges() -> None:
    assert TUNABLE_RANGES["epochs"] == ("int", 1, 1000)
    assert TUNABLE_RANGES["mini_batch_size"] == ("int", 100, 10000)
    assert TUNABLE_RANGES["factors_lr"] == ("float", 1e-8, 512.0)
    assert "feature_dim" not in TUNABLE_RANGES and "predictor_type" not in TUNABLE_RANGES


def test_recommended_set_is_valid() -> None:
    hp = parse_hyperparameters({**RECOMMENDED, "feature_dim": "10", "predictor_type": "binary_classifier"})
    assert hp.factors_lr > HyperParameters(1, 1, "regressor").factors_lr
