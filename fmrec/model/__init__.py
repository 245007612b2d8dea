"""Factorization Machines: the scoring math, hyperparameters, the trainer and the model artifact."""
