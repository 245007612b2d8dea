"""Tests of the API Gateway twin (twins/api)."""
