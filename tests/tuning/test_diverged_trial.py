"""Issue 24 (minor): a trial whose weights overflowed is Failed, not Completed, even with a finite NDCG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.model.fm import FMParams
from fmrec.tuning import fm_trial
from fmrec.tuning.fm_trial import check_finite
from fmrec.tuning.local import FAILED, _execute


def _params(bad: float) -> FMParams:
    V = np.ones((4, 2), dtype=np.float32)
    V[1, 1] = bad
    return FMParams(0.1, np.zeros(4, dtype=np.float32), V)


def test_non_finite_weights_fail_the_trial() -> None:
    check_finite(_params(1.0))
    with pytest.raises(InputError, match="training diverged: the model's V"):
        check_finite(_params(np.nan))
    with pytest.raises(InputError, match="diverged"):
        check_finite(_params(np.inf))


def test_a_diverged_trial_with_a_finite_objective_is_recorded_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FMTrial trains (here: a trainer whose weights overflowed, with a finite last objective), and the search
    records the trial as Failed with the reason."""
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))
    y = np.ones(4, dtype=np.float32)
    monkeypatch.setattr(fm_trial, "load_channels", lambda data: (X, y, X, y))

    def overflowed(*args: Any, on_epoch: Any, **kwargs: Any) -> tuple[FMParams, list[Any]]:
        on_epoch(1, {"test:binary_classification_cross_entropy": 0.3})
        return _params(np.nan), []

    monkeypatch.setattr(fm_trial, "train", overflowed)
    trial = fm_trial.FMTrial(
        fm_trial.TrialData("unused"), "test:binary_classification_cross_entropy", "cross_entropy"
    )
    hp = {"feature_dim": "4", "num_factors": "2", "predictor_type": "binary_classifier"}
    result = _execute(trial, 1, "t1", hp, [], False, False, 3, 1, str(tmp_path / "m.tar.gz"))
    assert result.status == FAILED and "training diverged" in (result.reason or "")
    assert not (tmp_path / "m.tar.gz").exists()
