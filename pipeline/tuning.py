"""The tuning path of the pipeline: a TuningStep (CreateHyperParameterTuningJob) over FM's ranges.

    ChooseTraining (Condition: UseTuning == true)
      ├─ if ──► CarveValidation ──► TuneModel ──► EvaluateModelTuned ──► CheckQualityTuned ──► register | fail
      │         (train → fit +      (Bayesian, early stopping;   model: <tuning output>/<best job>/output/
      │          validation)         test channel = validation)
      └─ else ► TrainModel ──► EvaluateModel ──► CheckQuality ──► register | fail   (the plain chain)

The tuning job's "test" channel is the validation split carved from the train channel, so the gate's test set
never steers the search. SageMaker Pipelines cannot skip a step except through a ConditionStep branch, and a
step downstream of both branches would not run, so each branch carries its own evaluate → gate → register
chain (the same factory builds both); the tuned chain's model is TuningStep.get_top_model_s3_uri(top_k=0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from fmrec.tuning.space import (
    DEFAULT_RANGES,
    ParamRange,
    TuningError,
    build_space,
    check_budget,
    resolve_objective,
)
from fmrec.tuning.split import DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_FRACTION
from pipeline.estimator import fm_estimator
from pipeline.sdk import (
    ConditionEquals,
    ConditionStep,
    ContinuousParameter,
    HyperparameterTuner,
    IntegerParameter,
    Join,
    ParameterBoolean,
    ParameterInteger,
    ProcessingInput,
    ProcessingOutput,
    ProcessingStep,
    TrainingInput,
    TuningStep,
)

CHOOSE_STEP = "ChooseTraining"
CARVE_STEP = "CarveValidation"
TUNE_STEP = "TuneModel"
TUNED_SUFFIX = "Tuned"
USE_TUNING = "UseTuning"
MAX_JOBS = "TuningMaxJobs"
MAX_PARALLEL = "TuningMaxParallelJobs"
TUNING_MODELS_PREFIX = "models/tuning"
# AWS's FM tuning page lists the hyperparameters a tuning job may search, and num_factors is not one of them
# (https://docs.aws.amazon.com/sagemaker/latest/dg/fm-tuning.html): it stays static, the NumFactors parameter.
STATIC_ONLY = ("num_factors",)
PIPELINE_RANGES = tuple(r for r in DEFAULT_RANGES if r.name not in STATIC_ONLY)


@dataclass(frozen=True)
class TuningOptions:
    """What the tuning branch searches; the parameters' defaults can be overridden per execution."""

    predictor_type: str = "binary_classifier"
    objective: str | None = None  # None: the predictor type's default (cross entropy for binary)
    ranges: Sequence[ParamRange] = field(default_factory=lambda: PIPELINE_RANGES)
    use_tuning: bool = False  # default of the UseTuning parameter
    max_jobs: int = 20
    max_parallel_jobs: int = 2
    # FM is not on AWS's list of algorithms that early stopping works with
    # (https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-early-stopping.html): "Auto"
    # would change nothing there while the local twin stops trials early, so the branch asks for "Off" and
    # both run every trial to the end (docs/tuning.md, "Early stopping").
    early_stopping: bool = False
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    split_seed: int = DEFAULT_SPLIT_SEED

    def __post_init__(self) -> None:
        # Every check runs when the options are made, so a bad range or objective never reaches a definition.
        static = sorted({r.name for r in self.ranges} & set(STATIC_ONLY))
        if static:
            raise TuningError(
                f"ranges: {', '.join(static)} is not tunable for FM on SageMaker (fm-tuning page); it stays "
                "a static hyperparameter (pipeline parameter NumFactors)"
            )
        self.space()
        resolve_objective(self.predictor_type, self.objective)
        check_budget(self.max_jobs, self.max_parallel_jobs)

    def space(self) -> tuple[ParamRange, ...]:
        return build_space(self.ranges, base=())


def _sdk_range(r: ParamRange) -> Any:
    if r.kind == "int":
        return IntegerParameter(int(r.low), int(r.high), scaling_type=r.scaling)
    return ContinuousParameter(r.low, r.high, scaling_type=r.scaling)


def tuning_branch(
    *,
    options: TuningOptions,
    session: Any,
    processor: Callable[[str], Any],
    code_input: Any,
    s3_out: Callable[..., list[Any]],
    bucket: str,
    fm_image: str,
    role_arn: str,
    train_uri: Any,
    static_hyperparameters: dict[str, Any],
    instance_type: Any,
    instance_count: Any,
    plain_steps: Sequence[Any],
    chain: Callable[[Any, str], list[Any]],
) -> tuple[list[Any], Any]:
    """The pipeline parameters it adds and the ConditionStep that replaces `plain_steps` at the top level.

    `chain(model_output_uri, suffix)` builds evaluate → gate → register | fail for one model, as
    the plain chain is built; `static_hyperparameters` are the plain estimator's (tuned ones dropped).
    """
    # Every check runs at build time, so a bad range or objective never reaches a pipeline execution.
    space = options.space()
    objective = resolve_objective(options.predictor_type, options.objective)
    check_budget(options.max_jobs, options.max_parallel_jobs)
    tuned = {r.name for r in space}
    static = {k: v for k, v in static_hyperparameters.items() if k not in tuned}

    use_tuning = ParameterBoolean(USE_TUNING, default_value=options.use_tuning)
    max_jobs = ParameterInteger(MAX_JOBS, default_value=options.max_jobs)
    max_parallel = ParameterInteger(MAX_PARALLEL, default_value=options.max_parallel_jobs)

    carve = ProcessingStep(
        name=CARVE_STEP,
        step_args=processor("carve_validation.py").run(
            inputs=[
                ProcessingInput(
                    source=train_uri, destination="/opt/ml/processing/input/train", input_name="train"
                ),
                code_input,
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=f"/opt/ml/processing/output/{name}",
                    destination=Join(on="/", values=s3_out("carve", name)),
                )
                for name in ("train", "validation")
            ],
            arguments=["--fraction", str(options.validation_fraction), "--seed", str(options.split_seed)],
        ),
    )

    def carved(name: str) -> Any:
        return carve.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    models_uri = f"s3://{bucket}/{TUNING_MODELS_PREFIX}"
    estimator = fm_estimator(
        image_uri=fm_image,
        role_arn=role_arn,
        instance_count=instance_count,
        instance_type=instance_type,
        output_path=models_uri,
        session=session,
    )
    estimator.set_hyperparameters(**static)
    tuner = HyperparameterTuner(
        estimator=estimator,
        objective_metric_name=objective.metric_name,
        objective_type=objective.direction,
        hyperparameter_ranges={r.name: _sdk_range(r) for r in space},
        strategy="Bayesian",
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel,
        early_stopping_type="Auto" if options.early_stopping else "Off",
    )
    tune = TuningStep(
        name=TUNE_STEP,
        step_args=tuner.fit(
            {
                # Sharded as in the plain TrainingStep, so TrainingInstanceCount > 1 works for every trial.
                "train": TrainingInput(carved("train"), distribution="ShardedByS3Key", content_type=RECORDIO),
                "test": TrainingInput(
                    carved("validation"), distribution="FullyReplicated", content_type=RECORDIO
                ),
            }
        ),
    )
    # Summaries come sorted by final objective, best first: index 0 is the best training job.
    model_output = Join(
        on="/",
        values=[
            "s3:/",
            bucket,
            TUNING_MODELS_PREFIX,
            tune.properties.TrainingJobSummaries[0].TrainingJobName,
            "output",
        ],
    )
    tuned_chain = chain(model_output, TUNED_SUFFIX)
    choose = ConditionStep(
        name=CHOOSE_STEP,
        conditions=[ConditionEquals(left=use_tuning, right=True)],
        if_steps=[carve, tune, *tuned_chain],
        else_steps=list(plain_steps),
    )
    return [use_tuning, max_jobs, max_parallel], choose
