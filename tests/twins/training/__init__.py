"""Tests of the training-job twin (twins/training)."""
