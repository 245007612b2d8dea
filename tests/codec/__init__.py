"""Tests of fmrec.codec."""
