"""The SageMaker Pipeline: its step scripts and the definition factory."""
