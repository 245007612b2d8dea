"""The SageMaker Pipeline definition: preprocess → train → evaluate → gate → register | fail.

                                                             ┌──(all true)──► RegisterModel
    Preprocess ──► TrainModel ──► EvaluateModel ──► CheckQuality                (model package group,
    (SKLearn        (built-in FM     (SKLearn          (Condition on              PendingManualApproval)
     processing)     image, recordIO   processing,       evaluation.json, per
         │           train sharded     PropertyFile      Objective: ranking: NDCG@10
         │           by S3 key)        "Evaluation";     lift over popularity >=
         │               ▲             reads holdout/)   GateNdcgMargin; rating: AUC
         │               │                               >= GateMinAuc, beats both
         └─ manifest.json┘                               baselines on AUC and log loss)
            (PropertyFile "Manifest": feature_dim        └──(else)──► QualityGateFailed (Fail: the figures)
             reaches the FM hyperparameters by JsonGet)

Built with the SageMaker Python SDK 2.x (pinned in requirements-dev.txt) through an offline session: every
value that names an account resource (bucket, role, code location) is a plain string, usually a CloudFormation
placeholder such as ``${ArtifactBucket}``, and any SDK path that would reach AWS raises instead.

Seam for the tuning path: ``evaluation_chain(...)`` builds evaluate → gate → register | fail for any model
artifact, so a TuningStep branch (switched by a parameter through a ConditionStep) adds its own chain beside
the plain TrainModel chain; see pipeline/tuning.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fmrec.features.objective import OBJECTIVES  # the Objective parameter's values; the first is the default
from fmrec.features.settings import DEFAULTS
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from pipeline.build.context import BuildContext
from pipeline.build.evaluate import evaluate_step
from pipeline.build.gate import GATE_CHECKS, gate_step
from pipeline.build.preprocess import preprocess_step
from pipeline.build.register import register_step
from pipeline.build.train import train_step
from pipeline.parameters import objective_defaults, pipeline_parameters
from pipeline.sdk import Pipeline, PipelineDefinitionConfig
from pipeline.session import (
    MAX_DEFINITION_CHARS,
    DefinitionError,
    check_arguments,
    image_uris,
    offline_session,
    quiet_sdk,
)
from pipeline.tuning import TuningOptions, tuning_branch

# What importers use from here, wherever it is built.
__all__ = [
    "CDK_ARGUMENTS",
    "GATE_CHECKS",
    "MAX_DEFINITION_CHARS",
    "OBJECTIVES",
    "PLACEHOLDERS",
    "SEED_HYPERPARAMETERS",
    "DefinitionError",
    "evaluation_chain",
    "get_pipeline",
    "image_uris",
]

# The CloudFormation variables of the definition; the CDK app wraps the JSON in Fn::Sub with them.
PLACEHOLDERS = ("ArtifactBucket", "PipelineRoleArn")
# code_uri must start with s3:// as a literal: the SDK would treat anything else as a local path to upload.
# The CDK app passes its content-addressed folder s3://${ArtifactBucket}/code/<version>/ (stacks/pipeline.py).
CDK_ARGUMENTS = {
    "artifact_bucket": "${ArtifactBucket}",
    "role_arn": "${PipelineRoleArn}",
    "code_uri": "s3://${ArtifactBucket}/code/",
}


# The seed notebook's values, for the benchmark's comparison (pass as get_pipeline(hyperparameters=...)).
SEED_HYPERPARAMETERS = {
    "NumFactors": 64,
    "Epochs": 30,
    "MiniBatchSize": 200,
    "LinearLr": 0.001,
    "FactorsLr": 0.0001,
    "BiasWd": 0.01,
    "LinearWd": 0.001,
    "FactorsWd": 0.00001,
    "FactorsInitSigma": 0.001,
}


def get_pipeline(
    *,
    region: str,
    role_arn: str,
    artifact_bucket: str,
    code_uri: str,
    pipeline_name: str = "fmrec-pipeline",
    model_package_group_name: str = "fmrec-models",
    input_data_url: str | None = None,
    label_threshold: float = float(DEFAULTS["threshold"]),
    gate_min_auc: float = 0.6,
    gate_ndcg_margin: float = 0.1,
    processing_instance_type: str = "ml.m5.xlarge",
    processing_instance_count: int = 1,
    training_instance_type: str = "ml.c4.xlarge",
    training_instance_count: int = 1,
    hyperparameters: Mapping[str, int | float | str] | None = None,
    tuning: TuningOptions | None = None,
    # The objective settings' defaults: the settings table's (fmrec/features/settings.py).
    objective: str = str(DEFAULTS["objective"]),
    negatives_per_positive: int = int(DEFAULTS["negatives_per_positive"]),
    negative_exponent: float = float(DEFAULTS["negative_exponent"]),
    positives: str = str(DEFAULTS["positives"]),
    history: int = int(DEFAULTS["history"]),
    below_threshold_negatives: bool = bool(DEFAULTS["below_threshold_negatives"]),
    passes: int = int(DEFAULTS["passes"]),
) -> dict[str, Any]:
    """The pipeline definition as a JSON-ready dict; `json.dumps` it for CfnPipeline or the local runner.

    The keyword defaults become the parameters' default values; every one can be overridden per execution.
    `hyperparameters` overrides defaults by pipeline parameter name (NumFactors, Epochs, MiniBatchSize,
    LinearLr, FactorsLr, BiasWd, LinearWd, FactorsWd, FactorsInitSigma).
    `tuning` adds the optional tuning path (pipeline/tuning.py), switched per execution by UseTuning.
    `objective` .. `passes` are the defaults of the training-objective parameters (Objective,
    NegativesPerPositive, NegativeExponent, PositiveRule, HistoryLength, BelowThresholdNegatives,
    SamplingPasses),
    checked here as fmrec/features/objective.py and history.py check them in the preprocess step.
    """
    check_arguments(region, artifact_bucket, code_uri, role_arn)
    sampling = objective_defaults(
        objective=objective,
        negatives_per_positive=negatives_per_positive,
        negative_exponent=negative_exponent,
        positives=positives,
        below_threshold_negatives=below_threshold_negatives,
        history=history,
        passes=passes,
    )
    overrides = dict(hyperparameters or {})
    unknown = sorted(set(overrides) - {h.parameter for h in PIPELINE_PARAMETERS})
    if unknown:
        raise DefinitionError(
            f"hyperparameters: unknown {unknown}; "
            f"expected some of {[h.parameter for h in PIPELINE_PARAMETERS]}"
        )
    with quiet_sdk():
        return _build(
            region=region,
            role_arn=role_arn,
            bucket=artifact_bucket,
            # A folder: SageMaker lists the S3Prefix input with the key as given (ProcessingS3Input S3Uri,
            # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html), and the
            # role's s3:prefix conditions are "<folder>/*": "code" alone would be denied (and match "code2/").
            code_uri=code_uri.rstrip("/") + "/",
            pipeline_name=pipeline_name,
            group=model_package_group_name,
            input_data_url=input_data_url or f"s3://{artifact_bucket}/data/ml-100k",
            label_threshold=label_threshold,
            gate_min_auc=gate_min_auc,
            gate_ndcg_margin=gate_ndcg_margin,
            processing_instance_type=processing_instance_type,
            processing_instance_count=processing_instance_count,
            training_instance_type=training_instance_type,
            training_instance_count=training_instance_count,
            hp_defaults={h.parameter: overrides.get(h.parameter, h.default) for h in PIPELINE_PARAMETERS},
            tuning=tuning,
            sampling=sampling,
        )


def _build(
    *,
    region: str,
    role_arn: str,
    bucket: str,
    code_uri: str,
    pipeline_name: str,
    group: str,
    tuning: TuningOptions | None = None,
    **parameter_defaults: Any,
) -> dict[str, Any]:
    session = offline_session(region, bucket)
    images = image_uris(region)
    params = pipeline_parameters(**parameter_defaults)
    ctx = BuildContext.create(
        session=session,
        images=images,
        role_arn=role_arn,
        bucket=bucket,
        group=group,
        params=params,
        code_uri=code_uri,
    )
    preprocess, manifest, pre_uri = preprocess_step(ctx)
    train, estimator, train_output = train_step(ctx, manifest, pre_uri)

    def chain(model_output_uri: Any, suffix: str = "") -> list[Any]:
        return evaluation_chain(ctx, model_output_uri, pre_uri, suffix)

    plain_steps = [train, *chain(train_output)]
    parameters = params.ordered()
    steps = [preprocess, *plain_steps]
    if tuning is not None:
        # The optional tuning path (pipeline/tuning.py): a Condition on the UseTuning parameter chooses the
        # TuningStep branch or these plain steps; each branch has its own evaluate → gate → register chain.
        tuning_parameters, choose = tuning_branch(
            options=tuning,
            session=session,
            processor=ctx.processor,
            code_input=ctx.code_input,
            s3_out=ctx.s3_out,
            bucket=bucket,
            fm_image=images["fm"],
            role_arn=role_arn,
            train_uri=pre_uri("train"),
            static_hyperparameters=estimator.hyperparameters(),
            instance_type=params.train_type,
            instance_count=params.train_count,
            plain_steps=plain_steps,
            chain=chain,
        )
        parameters += tuning_parameters
        steps = [preprocess, choose]
    return _definition(pipeline_name, parameters, steps, session)


def _definition(name: str, parameters: list[Any], steps: list[Any], session: Any) -> dict[str, Any]:
    pipeline = Pipeline(
        name=name,
        parameters=parameters,
        steps=steps,
        sagemaker_session=session,
        pipeline_experiment_config=None,
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
    )
    definition: dict[str, Any] = json.loads(pipeline.definition())
    if definition.get("PipelineExperimentConfig") is None:
        definition.pop("PipelineExperimentConfig", None)  # no experiment tracking: omit rather than send null
    size = len(json.dumps(definition))
    if size > MAX_DEFINITION_CHARS:
        raise DefinitionError(
            f"definition is {size} characters; SageMaker accepts at most {MAX_DEFINITION_CHARS}"
        )
    return definition


def evaluation_chain(
    ctx: BuildContext, model_output_uri: Any, pre_uri: Callable[[str], Any], suffix: str = ""
) -> list[Any]:
    """evaluate → gate → register | fail for one model; `suffix` names a second chain (the tuning branch).
    What is registered is the model the evaluate step judged (its `model` output)."""
    evaluate, metric, eval_parts, served = evaluate_step(ctx, model_output_uri, pre_uri, suffix)
    register = register_step(ctx, served, pre_uri("lookup"), eval_parts, suffix)
    return [evaluate, gate_step(ctx, metric, register, suffix)]
