"""Tests of fmrec.tuning and the pipeline's tuning branch."""
