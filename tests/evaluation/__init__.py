"""Tests of fmrec.evaluation."""
