"""The training-job twin: SageMaker FM's container contract run locally."""

from twins.training.job import run_training, run_training_job

__all__ = ["run_training", "run_training_job"]
