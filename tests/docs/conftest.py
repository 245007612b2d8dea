"""Fixtures: a tiny synthetic ml-100k folder, preprocessed as the pipeline does by default, and a model."""

from tests.support.cli_world import data_dir, pre, trained

__all__ = ["data_dir", "pre", "trained"]
