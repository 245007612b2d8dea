"""Tests of fmrec.model."""
