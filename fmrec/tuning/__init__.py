"""Hyperparameter tuning: the search space shared by the SageMaker tuning job and its local twin."""
