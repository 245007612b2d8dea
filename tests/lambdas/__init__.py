"""Tests of the deployed Lambda handlers."""
