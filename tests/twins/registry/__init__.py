"""Tests of the model registry twin (twins/registry)."""
