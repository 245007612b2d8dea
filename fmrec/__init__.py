"""fmrec: a MovieLens recommender on SageMaker Factorization Machines, on AWS with CDK or offline."""

__version__ = "0.1.0"
