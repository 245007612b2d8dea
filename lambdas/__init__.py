"""Lambda function code deployed by the CDK stacks."""
