"""SageMaker's "Auto" early-stopping rule for tuning jobs, as a pure function and as an Optuna pruner."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import optuna

# SageMaker ("Stop Training Jobs Early"): after each epoch, a training job stops when its objective is worse
# than the median of the running averages of the objective of previous training jobs up to the same epoch.
# These two knobs keep the rule from firing before there is a median worth trusting.
DEFAULT_MIN_COMPLETED = 3
DEFAULT_WARMUP_EPOCHS = 1


def running_average(curve: Sequence[float], epoch: int) -> float:
    """Mean of the first `epoch` values of `curve` (epochs counted from 1)."""
    return sum(curve[:epoch]) / epoch


def should_stop(
    curve: Sequence[float],
    completed_curves: Sequence[Sequence[float]],
    maximize: bool,
    *,
    min_completed: int = DEFAULT_MIN_COMPLETED,
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
) -> bool:
    """True when the job with per-epoch objective `curve` (so far) should stop after its last epoch.

    `completed_curves` are the per-epoch objectives of previous jobs that completed; only those that reached
    this epoch count towards the median, as SageMaker compares "up to the same epoch".
    """
    epoch = len(curve)
    if epoch <= warmup_epochs:
        return False
    peers = [running_average(c, epoch) for c in completed_curves if len(c) >= epoch]
    if len(peers) < min_completed:
        return False
    median = statistics.median(peers)
    current = running_average(curve, epoch)
    return current < median if maximize else current > median


class MedianRunningAveragePruner(optuna.pruners.BasePruner):
    """Optuna's face of `should_stop`: prune a trial whose running average is worse than the median."""

    def __init__(
        self, min_completed: int = DEFAULT_MIN_COMPLETED, warmup_epochs: int = DEFAULT_WARMUP_EPOCHS
    ):
        self.min_completed = min_completed
        self.warmup_epochs = warmup_epochs

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        curve = trial_curve(trial)
        completed = [
            trial_curve(t)
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        ]
        return should_stop(
            curve,
            completed,
            study.direction == optuna.study.StudyDirection.MAXIMIZE,
            min_completed=self.min_completed,
            warmup_epochs=self.warmup_epochs,
        )


def trial_curve(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The trial's reported objective per epoch, in epoch order (steps are epochs counted from 1)."""
    values = trial.intermediate_values
    return [values[step] for step in sorted(values)]
