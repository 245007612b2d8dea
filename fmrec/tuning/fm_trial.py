"""One tuning trial with the local FM trainer: load (and cache) the channels, train, save the model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.errors import InputError
from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.hyperparameters import parse_hyperparameters
from fmrec.model.trainer import train
from fmrec.tuning.local import TrialStopped
from fmrec.tuning.ranking import RankingData, load_validation
from fmrec.tuning.split import DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_FRACTION, carve

Channels = tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]


@dataclass(frozen=True)
class TrialData:
    """Where a trial's data lives; picklable, so worker processes load it themselves (once each)."""

    train: str
    validation: str | None = None  # None: carve it from `train`
    fraction: float = DEFAULT_VALIDATION_FRACTION
    split_seed: int = DEFAULT_SPLIT_SEED


_CACHE: dict[TrialData, Channels] = {}


def load_channels(data: TrialData) -> Channels:
    """(X_fit, y_fit, X_val, y_val), read once per process."""
    cached = _CACHE.get(data)
    if cached is not None:
        return cached
    X, y = read_spmatrix(Path(data.train))
    if y is None:
        raise InputError(f"{data.train}: train channel has no labels")
    if data.validation is None:
        channels = carve(X, y, data.fraction, data.split_seed)
    else:
        Xv, yv = read_spmatrix(Path(data.validation))
        if yv is None:
            raise InputError(f"{data.validation}: validation channel has no labels")
        channels = (X, y, Xv, yv)
    _CACHE.clear()  # one data set per process at a time keeps memory bounded
    _CACHE[data] = channels
    return channels


def objective_value(metrics: Mapping[str, Any], metric_name: str, metric_key: str) -> float:
    """The objective from a metrics dict, whether keyed as SageMaker names it or by the short name."""
    for key in (metric_name, metric_name.split(":", 1)[-1], metric_key, f"test:{metric_key}"):
        if key in metrics:
            return float(metrics[key])
    raise InputError(
        f"metric {metric_name}: the trainer did not report it (got {', '.join(map(str, metrics))})"
    )


@dataclass(frozen=True)
class FMTrial:
    """The trial function run_search calls: picklable, so it runs in worker processes."""

    data: TrialData
    metric_name: str
    metric_key: str
    # The ranking objective: NDCG@10 (fmrec.evaluation) of the held-out validation ratings after every epoch;
    # data then holds the carved folder's train and test channels.
    ranking: RankingData | None = None

    def __call__(
        self, hp: dict[str, str], stop_rule: Callable[[list[float]], bool], model_path: Path
    ) -> tuple[list[float], float]:
        X, y, Xv, yv = load_channels(self.data)
        parsed = parse_hyperparameters(hp)
        curve: list[float] = []

        def on_epoch(epoch: int, metrics: Mapping[str, Any]) -> None:
            curve.append(objective_value(metrics, self.metric_name, self.metric_key))
            if stop_rule(list(curve)):
                raise TrialStopped

        ranked = None if self.ranking is None else load_validation(self.ranking).metrics
        params, history = train(X, y, parsed, test=(Xv, yv), on_epoch=on_epoch, params_metrics=ranked)
        check_finite(params)
        save_trial_model(params, parsed, hp, history, model_path)
        return curve, curve[-1]


def check_finite(params: Any) -> None:
    """A model whose weights overflowed diverged, even when its objective came out finite (NDCG ranks any
    scores, NaN ones included): the trial fails rather than completes."""
    for name in ("w0", "w", "V"):
        if not np.isfinite(np.asarray(getattr(params, name))).all():
            raise InputError(f"training diverged: the model's {name} holds non-finite values")


def save_trial_model(params: Any, parsed: Any, hp: Mapping[str, str], history: Any, path: Path) -> None:
    model = FMModel(
        params=params,
        predictor_type=hp["predictor_type"],
        hyperparameters=dict(hp),
        meta={"training_parameters": dict(hp)},
    )
    save_model_tar(model, path)
