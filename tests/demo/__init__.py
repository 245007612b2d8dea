"""Tests of the end-to-end demo command."""
