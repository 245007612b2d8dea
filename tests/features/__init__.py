"""Tests of fmrec.features and the preprocess step."""
