"""SageMaker Processing step scripts, each a main(base_dir) over pure functions."""
