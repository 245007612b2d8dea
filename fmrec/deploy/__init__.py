"""Deployment settings and checks shared by the CDK app and the CLI: stage config, layers, preflight."""
