"""Tests of the recommend Lambda (lambdas/recommend)."""
