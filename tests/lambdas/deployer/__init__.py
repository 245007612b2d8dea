"""Tests of the deployer Lambda (lambdas/deployer)."""
