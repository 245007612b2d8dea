"""Tests of the local AWS twins (twins/)."""
