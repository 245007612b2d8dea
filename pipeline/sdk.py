"""The SageMaker Python SDK 2.x: the definition's one door to it, imported once and quietly."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Set only while the SDK imports or builds: no EC2 metadata lookup for credentials, no v2 deprecation banner.
BUILD_ENV = {"AWS_EC2_METADATA_DISABLED": "true", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}


@contextmanager
def quiet() -> Iterator[None]:
    """BUILD_ENV set, the SDK's loggers at ERROR and warnings ignored; all restored on exit.

    On import the SDK warns of its v2 deprecation (a FutureWarning and a log line, unless
    SAGEMAKER_SUPPRESS_V2_WARNING is set: sagemaker/deprecations.py) and logs to stdout where it looked for a
    config file; on every build it logs deprecation notices and per-field INFO lines. Some constructors (the
    Estimator's TensorBoard helper) create a default boto3 client, whose credential chain would query the EC2
    instance metadata service when no credentials are set: that lookup is switched off.
    """
    saved_env = {name: os.environ.get(name) for name in BUILD_ENV}
    os.environ.update(BUILD_ENV)
    loggers = [logging.getLogger(name) for name in ("sagemaker", "sagemaker.config")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


with quiet():
    import sagemaker.utils as utils
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import (
        ConditionEquals,
        ConditionGreaterThan,
        ConditionGreaterThanOrEqualTo,
        ConditionLessThan,
        ConditionOr,
    )
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import (
        ParameterBoolean,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TuningStep

__all__ = [
    "BUILD_ENV",
    "ConditionEquals",
    "ConditionGreaterThan",
    "ConditionGreaterThanOrEqualTo",
    "ConditionLessThan",
    "ConditionOr",
    "ConditionStep",
    "ContinuousParameter",
    "Estimator",
    "ExecutionVariables",
    "FailStep",
    "HyperparameterTuner",
    "IntegerParameter",
    "Join",
    "JsonGet",
    "MetricsSource",
    "Model",
    "ModelMetrics",
    "ModelStep",
    "ParameterBoolean",
    "ParameterFloat",
    "ParameterInteger",
    "ParameterString",
    "Pipeline",
    "PipelineDefinitionConfig",
    "PipelineSession",
    "ProcessingInput",
    "ProcessingOutput",
    "ProcessingStep",
    "Processor",
    "PropertyFile",
    "TrainingInput",
    "TrainingStep",
    "TuningStep",
    "image_uris",
    "quiet",
    "utils",
]
