"""Tests of fmrec.data."""
