"""Tests of the SageMaker endpoint twin (twins/endpoint)."""
