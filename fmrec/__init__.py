"""fmrec: a MovieLens recommender on SageMaker Factorization Machines, deployable with CDK and runnable offline."""

__version__ = "0.1.0"
