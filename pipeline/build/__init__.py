"""One small builder per step of the training pipeline; pipeline/definition.py puts them together."""
