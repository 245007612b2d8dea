"""CDK stacks, one module each: storage, pipeline, serving, API."""
