"""Local twins of the AWS runtime pieces: training job, registry, endpoint, API Gateway and the pipeline runner."""
