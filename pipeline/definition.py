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
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from fmrec.errors import InputError
from fmrec.features.history import HistoryConfig
from fmrec.features.objective import (
    OBJECTIVES,  # the Objective parameter's values; the first is the default
    SamplingConfig,
    check_objective,
)
from fmrec.features.options import DEFAULT_HISTORY
from fmrec.features.preprocess import OUTPUT_CHANNELS
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from pipeline import sdk
from pipeline.estimator import fm_estimator
from pipeline.sdk import (
    ConditionEquals,
    ConditionGreaterThan,
    ConditionGreaterThanOrEqualTo,
    ConditionLessThan,
    ConditionOr,
    ConditionStep,
    ExecutionVariables,
    FailStep,
    Join,
    JsonGet,
    MetricsSource,
    Model,
    ModelMetrics,
    ModelStep,
    ParameterFloat,
    ParameterInteger,
    ParameterString,
    Pipeline,
    PipelineDefinitionConfig,
    PipelineSession,
    ProcessingInput,
    ProcessingOutput,
    ProcessingStep,
    Processor,
    PropertyFile,
    TrainingInput,
    TrainingStep,
)
from pipeline.tuning import TuningOptions, tuning_branch

# The CloudFormation variables of the definition; the CDK app wraps the JSON in Fn::Sub with them.
PLACEHOLDERS = ("ArtifactBucket", "PipelineRoleArn")
# code_uri must start with s3:// as a literal: the SDK would treat anything else as a local path to upload.
# The CDK app passes its content-addressed folder s3://${ArtifactBucket}/code/<version>/ (stacks/pipeline.py).
CDK_ARGUMENTS = {
    "artifact_bucket": "${ArtifactBucket}",
    "role_arn": "${PipelineRoleArn}",
    "code_uri": "s3://${ArtifactBucket}/code/",
}
MAX_DEFINITION_CHARS = 1_048_576
# The SDK's defaults config for the build: telemetry off, so the SDK never phones home.
SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}

PREPROCESS_STEP = "Preprocess"
TRAIN_STEP = "TrainModel"
EVALUATE_STEP = "EvaluateModel"
GATE_STEP = "CheckQuality"
REGISTER_STEP = "RegisterModel"
FAIL_STEP = "QualityGateFailed"

CONTENT_TYPES = ("application/json", RECORDIO)
RESPONSE_TYPES = ("application/json",)
INFERENCE_INSTANCES = ("ml.c4.xlarge", "ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge")
TRANSFORM_INSTANCES = ("ml.c4.xlarge", "ml.m5.xlarge")
SKLEARN_VERSION = "1.4-2"  # the newest the SDK knows: the steps need a recent Python
PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"
PREDICTOR_TYPE = "binary_classifier"  # the gate reads classifier metrics, so the pipeline trains a classifier


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


@dataclass(frozen=True)
class GateCheck:
    """One gate condition of one objective: evaluation.json `left` <op> `right` (a path or a parameter)."""

    objective: str  # the check binds only when the Objective parameter has this value
    left: str
    op: str  # a SageMaker condition type
    right: str
    right_is_parameter: bool = False


# ranking: the model's NDCG@10 must beat popularity's by GateNdcgMargin, relative: model >= (1 + margin) x
# popularity. Relative, because NDCG levels differ across datasets while "x% better than most-popular" means
# the same on each. Conditions compare but cannot compute, so the evaluate step writes the lift
# (model - popularity) / popularity into evaluation.json and the condition compares it with the margin.
# rating: the seed's pointwise gate (AUC floor, better AUC and log loss than both baselines).
GATE_CHECKS = (
    GateCheck("ranking", "ranking.ndcg_at_10_lift", "GreaterThanOrEqualTo", "GateNdcgMargin", True),
    GateCheck("rating", "model.auc", "GreaterThanOrEqualTo", "GateMinAuc", right_is_parameter=True),
    GateCheck("rating", "model.auc", "GreaterThan", "popularity.auc"),
    GateCheck("rating", "model.auc", "GreaterThan", "biases.auc"),
    GateCheck("rating", "model.log_loss", "LessThan", "popularity.log_loss"),
    GateCheck("rating", "model.log_loss", "LessThan", "biases.log_loss"),
)


class DefinitionError(ValueError):
    """get_pipeline was given an argument it cannot build a definition from."""


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Keep the SDK 2.x quiet and local while it builds (sdk.quiet), and fast.

    The SDK re-validates its config against its JSON schema on every config lookup (about 100 per build,
    0.2-0.4 s each, most of the build time); the one config used here is validated once instead.
    """
    with sdk.quiet():
        validate = sdk.utils.validate_sagemaker_config
        validate(SDK_CONFIG)

        def validate_once(sagemaker_config: dict[Any, Any] | None = None) -> Any:
            return None if sagemaker_config == SDK_CONFIG else validate(sagemaker_config or {})

        sdk.utils.validate_sagemaker_config = validate_once
        try:
            yield
        finally:
            sdk.utils.validate_sagemaker_config = validate


def _offline_session(region: str, bucket: str) -> Any:
    """A PipelineSession that cannot reach AWS: the SDK paths that would call S3, IAM or STS raise instead."""

    class OfflineSession(PipelineSession):
        def default_bucket(self) -> str:
            return bucket

        def expand_role(self, role: str) -> str:
            return role

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise DefinitionError("the definition build must not call AWS (an SDK path tried to)")

        upload_data = upload_string_as_file_body = account_id = get_caller_identity_arn = _refuse

    # No credentials are read: building clients is local; telemetry is opted out so the SDK never phones home.
    session = boto3.Session(region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline")
    return OfflineSession(boto_session=session, default_bucket=bucket, sagemaker_config=dict(SDK_CONFIG))


def image_uris(region: str) -> dict[str, str]:
    """The FM and SKLearn image URIs of a region, from the config bundled with the SDK (no network)."""
    with _quiet_sdk():
        return {
            "fm": sdk.image_uris.retrieve("factorization-machines", region),
            "sklearn": sdk.image_uris.retrieve(
                "sklearn", region, version=SKLEARN_VERSION, instance_type="ml.m5.xlarge"
            ),
        }


def _check_arguments(region: str, artifact_bucket: str, code_uri: str, role_arn: str) -> None:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise DefinitionError(f"region: expected an AWS region name such as us-east-1, got {region!r}")
    if not artifact_bucket or "/" in artifact_bucket or artifact_bucket.startswith("s3:"):
        raise DefinitionError(
            f"artifact_bucket: expected a bucket name (no s3://, no /), got {artifact_bucket!r}"
        )
    if not code_uri.startswith("s3://") or code_uri.rstrip("/").count("/") < 3:
        raise DefinitionError(f"code_uri: expected an s3://bucket/folder URI, got {code_uri!r}")
    if not role_arn:
        raise DefinitionError("role_arn: expected an IAM role ARN (or a placeholder)")


def get_pipeline(
    *,
    region: str,
    role_arn: str,
    artifact_bucket: str,
    code_uri: str,
    pipeline_name: str = "fmrec-pipeline",
    model_package_group_name: str = "fmrec-models",
    input_data_url: str | None = None,
    label_threshold: float = 4.0,
    gate_min_auc: float = 0.6,
    gate_ndcg_margin: float = 0.1,
    processing_instance_type: str = "ml.m5.xlarge",
    training_instance_type: str = "ml.c4.xlarge",
    training_instance_count: int = 1,
    hyperparameters: Mapping[str, int | float | str] | None = None,
    tuning: TuningOptions | None = None,
    objective: str = OBJECTIVES[0],
    negatives_per_positive: int = 4,
    negative_exponent: float = 0.75,
    positives: str = "weighted",
    history: int = DEFAULT_HISTORY,
    below_threshold_negatives: bool = False,
) -> dict[str, Any]:
    """The pipeline definition as a JSON-ready dict; `json.dumps` it for CfnPipeline or the local runner.

    The keyword defaults become the parameters' default values; every one can be overridden per execution.
    `hyperparameters` overrides defaults by pipeline parameter name (NumFactors, Epochs, MiniBatchSize,
    LinearLr, FactorsLr, BiasWd, LinearWd, FactorsWd, FactorsInitSigma).
    `tuning` adds the optional tuning path (pipeline/tuning.py), switched per execution by UseTuning.
    `objective` .. `below_threshold_negatives` are the defaults of the training-objective parameters
    (Objective, NegativesPerPositive, NegativeExponent, PositiveRule, HistoryLength, BelowThresholdNegatives),
    checked here as fmrec/features/objective.py and history.py check them in the preprocess step.
    """
    _check_arguments(region, artifact_bucket, code_uri, role_arn)
    sampling = _objective_defaults(
        objective, negatives_per_positive, negative_exponent, positives, below_threshold_negatives, history
    )
    overrides = dict(hyperparameters or {})
    unknown = sorted(set(overrides) - {h.parameter for h in PIPELINE_PARAMETERS})
    if unknown:
        raise DefinitionError(
            f"hyperparameters: unknown {unknown}; "
            f"expected some of {[h.parameter for h in PIPELINE_PARAMETERS]}"
        )
    with _quiet_sdk():
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
            training_instance_type=training_instance_type,
            training_instance_count=training_instance_count,
            hp_defaults={h.parameter: overrides.get(h.parameter, h.default) for h in PIPELINE_PARAMETERS},
            tuning=tuning,
            sampling=sampling,
        )


def _objective_defaults(
    objective: str,
    negatives: int,
    exponent: float,
    positives: str,
    below: bool,
    history: int = DEFAULT_HISTORY,
) -> dict[str, Any]:
    """The objective parameters' defaults, refused here when the preprocess step would refuse them."""
    try:
        check_objective(objective, PREDICTOR_TYPE)
        SamplingConfig(objective, negatives, exponent, positives, below)
        HistoryConfig(cap=history).validate("HistoryLength")
    except InputError as exc:
        raise DefinitionError(str(exc)) from None
    return {
        "Objective": objective,
        "NegativesPerPositive": int(negatives),
        "NegativeExponent": float(exponent),
        "PositiveRule": positives,
        "BelowThresholdNegatives": "true" if below else "false",
        "HistoryLength": int(history),
    }


def _build(
    *,
    region: str,
    role_arn: str,
    bucket: str,
    code_uri: str,
    pipeline_name: str,
    group: str,
    input_data_url: str,
    label_threshold: float,
    gate_min_auc: float,
    gate_ndcg_margin: float,
    processing_instance_type: str,
    training_instance_type: str,
    training_instance_count: int,
    hp_defaults: Mapping[str, int | float | str],
    tuning: TuningOptions | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    session = _offline_session(region, bucket)
    images = image_uris(region)

    input_data = ParameterString("InputDataUrl", default_value=input_data_url)
    threshold = ParameterFloat("LabelThreshold", default_value=float(label_threshold))
    min_auc = ParameterFloat("GateMinAuc", default_value=float(gate_min_auc))
    ndcg_margin = ParameterFloat("GateNdcgMargin", default_value=float(gate_ndcg_margin))
    proc_type = ParameterString("ProcessingInstanceType", default_value=processing_instance_type)
    train_type = ParameterString("TrainingInstanceType", default_value=training_instance_type)
    train_count = ParameterInteger("TrainingInstanceCount", default_value=int(training_instance_count))
    approval = ParameterString("ModelApprovalStatus", default_value="PendingManualApproval")
    makers = {"Integer": ParameterInteger, "Float": ParameterFloat, "String": ParameterString}
    hp_params = {
        h.parameter: makers[h.kind](h.parameter, default_value=hp_defaults[h.parameter])
        for h in PIPELINE_PARAMETERS
    }
    # The training objective (fmrec/features/objective.py); BelowThresholdNegatives is a "true"/"false"
    # String rather than a Boolean so the argument the step receives is plain text.
    sampling = dict(sampling or _objective_defaults(OBJECTIVES[0], 4, 0.75, "weighted", False))
    objective = ParameterString("Objective", default_value=sampling["Objective"])
    negatives = ParameterInteger("NegativesPerPositive", default_value=sampling["NegativesPerPositive"])
    exponent = ParameterFloat("NegativeExponent", default_value=sampling["NegativeExponent"])
    positive_rule = ParameterString("PositiveRule", default_value=sampling["PositiveRule"])
    below = ParameterString("BelowThresholdNegatives", default_value=sampling["BelowThresholdNegatives"])
    history_length = ParameterInteger("HistoryLength", default_value=int(sampling["HistoryLength"]))
    parameters = [
        input_data,
        threshold,
        min_auc,
        ndcg_margin,
        proc_type,
        train_type,
        train_count,
        approval,
        *hp_params.values(),
        objective,
        negatives,
        exponent,
        positive_rule,
        below,
        history_length,
    ]

    def s3_out(*parts: str) -> list[Any]:
        # Each execution writes under its own id, so reruns never overwrite an earlier run's outputs.
        # The parts stay a flat list: Std:Join takes plain values and references, not a nested Join.
        return ["s3:/", bucket, "pipeline", ExecutionVariables.PIPELINE_EXECUTION_ID, *parts]

    def kept_out(*parts: str) -> list[Any]:
        # What a registered package needs later (its lookup) goes under models/, which never expires:
        # pipeline/ does, and a package may be approved, or its endpoint rebuilt, long after its run.
        return ["s3:/", bucket, "models", ExecutionVariables.PIPELINE_EXECUTION_ID, *parts]

    def processor(script: str) -> Any:
        return Processor(
            role=role_arn,
            image_uri=images["sklearn"],
            instance_count=1,  # both scripts are single-node
            instance_type=proc_type,
            entrypoint=["python3", f"{CODE_DIR}/pipeline/steps/{script}"],
            env={"PYTHONPATH": CODE_DIR},  # the code tree ships the fmrec package beside the scripts
            volume_size_in_gb=30,
            sagemaker_session=session,
        )

    code_input = ProcessingInput(source=code_uri, destination=CODE_DIR, input_name="code")

    # --- preprocess: MovieLens (or synthetic) → recordIO channels, lookup, manifest (feature_dim) ---
    manifest = PropertyFile(name="Manifest", output_name="manifest", path="manifest.json")
    pre_outputs = OUTPUT_CHANNELS
    preprocess = ProcessingStep(
        name=PREPROCESS_STEP,
        step_args=processor("preprocess.py").run(
            inputs=[
                ProcessingInput(
                    source=input_data, destination=f"{PROCESSING_ROOT}/input/data", input_name="data"
                ),
                code_input,
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=f"{PROCESSING_ROOT}/output/{name}",
                    destination=Join(
                        on="/", values=(kept_out if name == "lookup" else s3_out)("preprocess", name)
                    ),
                )
                for name in pre_outputs
            ],
            # One train shard per training instance, so ShardedByS3Key hands every host its own file.
            arguments=[
                *("--threshold", threshold.to_string(), "--shards", train_count.to_string()),
                *("--objective", objective, "--negatives", negatives.to_string()),
                *("--negative-exponent", exponent.to_string(), "--positives", positive_rule),
                *("--below-threshold-negatives", below, "--predictor-type", PREDICTOR_TYPE),
                *("--history", history_length.to_string()),
            ],
        ),
        property_files=[manifest],
    )

    def pre_uri(name: str) -> Any:
        return preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # --- train: the built-in FM container; feature_dim is only known after preprocess, so it comes from the
    # manifest by JsonGet (an over-allocated dim would waste memory and break the serving lookups' shape) ---
    models_uri = f"s3://{bucket}/models"
    estimator = fm_estimator(
        image_uri=images["fm"],
        role_arn=role_arn,
        instance_count=train_count,
        instance_type=train_type,
        output_path=models_uri,
        session=session,
    )
    estimator.set_hyperparameters(
        feature_dim=JsonGet(step_name=PREPROCESS_STEP, property_file=manifest, json_path="feature_dim"),
        predictor_type=PREDICTOR_TYPE,
        **{h.hyperparameter: hp_params[h.parameter] for h in PIPELINE_PARAMETERS},
    )
    train = TrainingStep(
        name=TRAIN_STEP,
        step_args=estimator.fit(
            {
                # Sharded so that TrainingInstanceCount > 1 gives each host its own shards (distributed FM).
                "train": TrainingInput(
                    pre_uri("train"), distribution="ShardedByS3Key", content_type=RECORDIO
                ),
                "test": TrainingInput(pre_uri("test"), distribution="FullyReplicated", content_type=RECORDIO),
            }
        ),
    )
    # The job's output folder holds model.tar.gz and, when the container wrote any, output.tar.gz (curves).
    train_output = Join(on="/", values=[models_uri, train.properties.TrainingJobName, "output"])

    def chain(model_output_uri: Any, model_data: Any, suffix: str = "") -> list[Any]:
        return evaluation_chain(
            session=session,
            processor=processor,
            code_input=code_input,
            model_output_uri=model_output_uri,
            model_data=model_data,
            test_uri=pre_uri("test"),
            train_uri=pre_uri("train"),
            lookup_uri=pre_uri("lookup"),
            holdout_uri=pre_uri("holdout"),
            s3_out=s3_out,
            fm_image=images["fm"],
            role_arn=role_arn,
            group=group,
            approval=approval,
            min_auc=min_auc,
            ndcg_margin=ndcg_margin,
            objective=objective,
            threshold=threshold,
            suffix=suffix,
        )

    plain_steps = [train, *chain(train_output, train.properties.ModelArtifacts.S3ModelArtifacts)]
    steps = [preprocess, *plain_steps]
    if tuning is not None:
        # The optional tuning path (pipeline/tuning.py): a Condition on the UseTuning parameter chooses the
        # TuningStep branch or these plain steps; each branch has its own evaluate → gate → register chain.
        tuning_parameters, choose = tuning_branch(
            options=tuning,
            session=session,
            processor=processor,
            code_input=code_input,
            s3_out=s3_out,
            bucket=bucket,
            fm_image=images["fm"],
            role_arn=role_arn,
            train_uri=pre_uri("train"),
            static_hyperparameters=estimator.hyperparameters(),
            instance_type=train_type,
            instance_count=train_count,
            plain_steps=plain_steps,
            chain=chain,
        )
        parameters += tuning_parameters
        steps = [preprocess, choose]
    pipeline = Pipeline(
        name=pipeline_name,
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
    *,
    session: Any,
    processor: Any,
    code_input: Any,
    model_output_uri: Any,
    model_data: Any,
    test_uri: Any,
    train_uri: Any,
    lookup_uri: Any,
    holdout_uri: Any,
    s3_out: Any,
    fm_image: str,
    role_arn: str,
    group: str,
    approval: Any,
    min_auc: Any,
    ndcg_margin: Any,
    objective: Any,
    threshold: Any,
    suffix: str = "",
) -> list[Any]:
    """evaluate → gate → register | fail for one model; `suffix` names a second chain (the tuning branch)."""
    evaluate_name = EVALUATE_STEP + suffix
    report = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    eval_parts = s3_out(f"evaluate{suffix.lower()}", "evaluation")
    evaluate = ProcessingStep(
        name=evaluate_name,
        step_args=processor("evaluate.py").run(
            inputs=[
                ProcessingInput(
                    source=model_output_uri, destination=f"{PROCESSING_ROOT}/input/model", input_name="model"
                ),
                ProcessingInput(
                    source=test_uri, destination=f"{PROCESSING_ROOT}/input/test", input_name="test"
                ),
                ProcessingInput(
                    source=train_uri, destination=f"{PROCESSING_ROOT}/input/train", input_name="train"
                ),
                ProcessingInput(
                    source=lookup_uri, destination=f"{PROCESSING_ROOT}/input/lookup", input_name="lookup"
                ),
                ProcessingInput(
                    source=holdout_uri, destination=f"{PROCESSING_ROOT}/input/holdout", input_name="holdout"
                ),
                code_input,
            ],
            outputs=[
                ProcessingOutput(
                    output_name="evaluation",
                    source=f"{PROCESSING_ROOT}/output/evaluation",
                    destination=Join(on="/", values=eval_parts),
                )
            ],
            # relevance: held-out rating >= LabelThreshold, the same cut the binary labels use
            arguments=["--objective", objective, "--threshold", threshold.to_string()],
        ),
        property_files=[report],
    )

    def metric(path: str) -> Any:
        return JsonGet(step_name=evaluate_name, property_file=report, json_path=path)

    ops = {
        "GreaterThanOrEqualTo": ConditionGreaterThanOrEqualTo,
        "GreaterThan": ConditionGreaterThan,
        "LessThan": ConditionLessThan,
    }
    parameters = {"GateMinAuc": min_auc, "GateNdcgMargin": ndcg_margin}
    # A ConditionStep's conditions must all hold (https://docs.aws.amazon.com/sagemaker/latest/dg/
    # build-and-manage-steps.html#step-type-condition), and there is no if/else on a parameter inside one
    # step. So each check of an objective becomes "Objective is the other one OR the check holds": it binds
    # exactly when its objective runs. An unknown Objective value binds every check of both objectives
    # (preprocess rejects it earlier anyway). Or of Equals is used rather than Not, whose JSON form the
    # service once rejected (https://github.com/aws/sagemaker-python-sdk/issues/2746).
    conditions: list[Any] = [
        ConditionOr(
            conditions=[
                ConditionEquals(left=objective, right=next(o for o in OBJECTIVES if o != c.objective)),
                ops[c.op](
                    left=metric(c.left),
                    right=parameters[c.right] if c.right_is_parameter else metric(c.right),
                ),
            ]
        )
        for c in GATE_CHECKS
    ]

    model = Model(image_uri=fm_image, model_data=model_data, role=role_arn, sagemaker_session=session)
    metrics_uri = Join(on="/", values=[*eval_parts, "model_metrics.json"])
    register = ModelStep(
        name=REGISTER_STEP + suffix,
        step_args=model.register(
            content_types=list(CONTENT_TYPES),
            response_types=list(RESPONSE_TYPES),
            inference_instances=list(INFERENCE_INSTANCES),
            transform_instances=list(TRANSFORM_INSTANCES),
            model_package_group_name=group,
            approval_status=approval,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=metrics_uri, content_type="application/json")
            ),
            description="fmrec: SageMaker Factorization Machines recommender (label: rating >= threshold)",
            # The serving side (deployer, API twin) needs the lookup of the data this model was trained on.
            customer_metadata_properties={
                "LookupS3Uri": lookup_uri,
                "EvaluationS3Uri": Join(on="/", values=eval_parts),
            },
        ),
    )
    # The Fail step's ErrorMessage may be a Join of parameters and JsonGet values, resolved when it runs
    # (https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps.html#step-type-fail); the
    # execution step's FailureReason keeps at most 1024 characters
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html), so it stays
    # short: the figures of both objectives, the Objective value saying which gate applied.
    fail = FailStep(
        name=FAIL_STEP + suffix,
        error_message=Join(
            on=" ",
            values=[
                "Quality gate failed for Objective",
                objective,
                "- ranking gate: model NDCG@10",
                metric("ranking.model.ndcg_at_10"),
                "vs popularity NDCG@10",
                metric("ranking.popularity.ndcg_at_10"),
                "is a lift of",
                metric("ranking.ndcg_at_10_lift"),
                "and needs >= GateNdcgMargin",
                ndcg_margin,
                "- rating gate: model AUC",
                metric("model.auc"),
                "log loss",
                metric("model.log_loss"),
                "needs AUC >= GateMinAuc",
                min_auc,
                "and better AUC and log loss than popularity: AUC",
                metric("popularity.auc"),
                "log loss",
                metric("popularity.log_loss"),
                "and biases-only: AUC",
                metric("biases.auc"),
                "log loss",
                metric("biases.log_loss"),
            ],
        ),
    )
    gate = ConditionStep(
        name=GATE_STEP + suffix, conditions=conditions, if_steps=[register], else_steps=[fail]
    )
    return [evaluate, gate]
