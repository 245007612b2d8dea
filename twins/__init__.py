"""Local twins of AWS runtime pieces: training job, registry, endpoint, API Gateway, pipeline runner."""
