"""Tests of the pipeline definitions (pipeline/) and the local pipeline runner."""
