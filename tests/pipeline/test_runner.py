"""The local pipeline runner: parameters, step order, gate, registration, failures, separate run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import TINY_RATING
from twins.pipeline.expressions import walk
from twins.pipeline.graph import all_steps
from twins.pipeline.runner import (
    LocalRun,
    ParameterError,
    StepFailed,
    parse_parameters,
    run_local,
    split_assignments,
)
from twins.registry.registry import Registry

pytestmark = pytest.mark.slow

REGISTER = "RegisterModel-RegisterModel"


def _run(definition: dict[str, Any], root: Path, **params: str) -> Any:
    return run_local(
        definition, runs_root=root / "pipeline", registry=Registry(root / "registry"), overrides=params
    )


def test_a_passing_run_registers_a_pending_version(tiny_run: Any) -> None:
    assert tiny_run.status == "Succeeded", tiny_run.failure_reason
    assert (
        tiny_run.steps["Preprocess"]
        == tiny_run.steps["TrainModel"]
        == tiny_run.steps[REGISTER]
        == "Succeeded"
    )
    assert tiny_run.steps["QualityGateFailed"] == "NotExecuted"
    ev = tiny_run.evaluation
    for baseline in ("popularity", "biases"):
        assert ev["model"]["auc"] > ev[baseline]["auc"]
        assert ev["model"]["log_loss"] < ev[baseline]["log_loss"]
    [package] = tiny_run.registered
    assert package.version == 1 and package.status == "PendingManualApproval"
    assert package.model_tar.is_file() and package.lookup_dir is not None
    assert package.doc["ModelMetrics"]["binary_classification_metrics"]["auc"]["value"] == ev["model"]["auc"]
    spec = package.doc["Request"]["InferenceSpecification"]
    assert "application/x-recordio-protobuf" in spec["SupportedContentTypes"]
    record = json.loads((tiny_run.folder / "run.json").read_text())
    assert record["status"] == "Succeeded" and record["registered"] == [package.arn]
    for step in ("Preprocess", "TrainModel", "EvaluateModel"):
        assert (tiny_run.folder / "steps" / step / "step.log").is_file()
    report = next(tiny_run.folder.glob("s3/*/pipeline/*/evaluate/evaluation/report.html")).read_text()
    # curves, ROC, score distribution, calibration, ranking bars
    assert report.count("data:image/png;base64,") == 5


def test_each_run_gets_its_own_folder_and_version(
    tiny_run: Any, local_definition: dict[str, Any], tiny_data: Path
) -> None:
    root = tiny_run.folder.parent.parent
    before = (tiny_run.folder / "run.json").read_bytes()
    # Two training instances: preprocess writes one train shard per instance (ShardedByS3Key).
    second = _run(
        local_definition, root, InputDataUrl=str(tiny_data), TrainingInstanceCount="2", **TINY_RATING
    )
    assert second.status == "Succeeded", second.failure_reason
    assert second.folder != tiny_run.folder and second.run_id != tiny_run.run_id
    assert (tiny_run.folder / "run.json").read_bytes() == before
    shards = sorted(p.name for p in (second.folder / "steps/TrainModel/job/input/data/train").iterdir())
    assert len(shards) == 2
    assert [p.version for p in Registry(root / "registry").list()] == [1, 2]


def test_rating_gate_failure_shows_the_reason_and_registers_nothing(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    # GateNdcgMargin=1000 would fail any ranking gate: in the rating objective it does not bind.
    result = _run(
        local_definition,
        tmp_path,
        InputDataUrl=str(tiny_data),
        Objective="rating",
        GateMinAuc="0.99",
        GateNdcgMargin="1000",
    )
    assert result.status == "Failed"
    auc = result.evaluation["model"]["auc"]
    assert result.failure_reason.startswith("Quality gate failed for Objective rating - ranking gate:")
    assert f"rating gate: model AUC {auc!r}" in result.failure_reason
    assert "needs AUC >= GateMinAuc 0.99" in result.failure_reason
    assert result.steps[REGISTER] == "NotExecuted" and result.steps["QualityGateFailed"] == "Failed"
    assert Registry(tmp_path / "registry").list() == []


def test_ranking_gate_fails_a_model_that_does_not_beat_popularity_and_names_both_figures(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    # The margin asks for 1000x popularity's NDCG@10, so the model loses whatever it learned.
    result = _run(local_definition, tmp_path, InputDataUrl=str(tiny_data), GateNdcgMargin="1000")
    assert result.status == "Failed"
    ranking = result.evaluation["ranking"]
    model, popularity = ranking["model"]["ndcg_at_10"], ranking["popularity"]["ndcg_at_10"]
    assert result.evaluation["objective"] == "ranking" and popularity > 0
    assert ranking["ndcg_at_10_lift"] == pytest.approx((model - popularity) / popularity)
    reason = result.failure_reason
    assert reason.startswith("Quality gate failed for Objective ranking - ranking gate:")
    assert f"model NDCG@10 {model!r} vs popularity NDCG@10 {popularity!r}" in reason
    assert "needs >= GateNdcgMargin 1000.0" in reason
    assert result.steps[REGISTER] == "NotExecuted" and result.steps["QualityGateFailed"] == "Failed"
    assert Registry(tmp_path / "registry").list() == []


def test_ranking_gate_passes_on_ndcg_alone(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    # GateMinAuc=0.99 would fail the rating gate: in the ranking objective only the NDCG lift binds.
    result = _run(
        local_definition,
        tmp_path,
        InputDataUrl=str(tiny_data),
        Objective="ranking",
        GateMinAuc="0.99",
        GateNdcgMargin="-1",
    )
    assert result.status == "Succeeded", result.failure_reason
    assert result.steps[REGISTER] == "Succeeded" and result.steps["QualityGateFailed"] == "NotExecuted"
    [package] = result.registered
    ranking = package.doc["ModelMetrics"]["ranking_metrics"]
    assert ranking["ndcg_at_10"]["value"] == result.evaluation["ranking"]["model"]["ndcg_at_10"]
    assert set(ranking) >= {"precision_at_10", "recall_at_10", "map_at_10", "coverage", "users"}


def test_an_unknown_objective_binds_both_gates(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    # Neither "Objective is the other one" holds, so every check must pass: a lift of 1000x cannot.
    parameters = parse_parameters(local_definition, {"Objective": "both"})
    run = LocalRun(local_definition, tmp_path, "r", parameters, Registry(tmp_path / "registry"), print)
    gate = next(s for s in all_steps(local_definition) if s["Name"] == "CheckQuality")
    run.property_files["EvaluateModel"] = {"Evaluation": tmp_path / "evaluation.json"}
    doc = {
        "ranking": {"ndcg_at_10_lift": 5.0},
        "model": {"auc": 0.9, "log_loss": 0.3},
        "popularity": {"auc": 0.5, "log_loss": 0.7},
        "biases": {"auc": 0.6, "log_loss": 0.6},
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    assert run._condition(gate)  # both objectives' checks hold
    doc["ranking"]["ndcg_at_10_lift"] = 0.01
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    assert not run._condition(gate)  # the ranking check binds under the unknown value
    run.parameters["Objective"] = "rating"
    assert run._condition(gate)  # ... and not under "rating"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Epoch": "3"}, "unknown parameter"),
        ({"Epochs": "ten"}, "Epochs=ten: expected integer"),
        ({"GateMinAuc": "high"}, "GateMinAuc=high: expected float"),
        ({"InputDataUrl": "/no/such/folder"}, "does not exist"),
        ({"InputDataUrl": "s3://bucket/data"}, "pass --data-dir"),
        (
            {"Epochs": "-1"},
            r"--param Epochs=-1: hyperparameter epochs: -1 is out of range; expected an integer >= 1",
        ),
        (
            {"MiniBatchSize": "0"},
            r"--param MiniBatchSize=0: hyperparameter mini_batch_size: 0 is out of range",
        ),
        ({"NumFactors": "0"}, r"--param NumFactors=0: hyperparameter num_factors"),
        ({"FactorsLr": "-0.5"}, r"--param FactorsLr=-0.5: hyperparameter factors_lr"),
        (
            {"Objective": "clicks"},
            "step Preprocess: preprocess arguments: argument --objective: invalid choice",
        ),
        (
            {"NegativesPerPositive": "-1"},
            r"step Preprocess: negatives per positive -1: expected .*\[0, 100\]",
        ),
        ({"NegativeExponent": "1.5"}, r"negative exponent 1.5: expected a number in \[0, 1\]"),
        ({"PositiveRule": "loved"}, "argument --positives: invalid choice"),
        ({"BelowThresholdNegatives": "true"}, "only with positives 'liked'"),
        ({"BelowThresholdNegatives": "yes"}, "expected true or false"),
        ({"Objective": "ranking", "LabelThreshold": "nan"}, "LabelThreshold=nan: expected float"),
    ],
)
def test_bad_parameters_fail_before_any_step(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        _run(local_definition, tmp_path, **{"InputDataUrl": str(tiny_data), **params})
    assert not (tmp_path / "pipeline").exists() or not any((tmp_path / "pipeline").iterdir())


def test_split_assignments_needs_name_and_value() -> None:
    assert split_assignments(["Epochs=3", "InputDataUrl=/a=b"]) == {"Epochs": "3", "InputDataUrl": "/a=b"}
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        split_assignments(["Epochs"])


def test_a_failed_step_stops_the_run_names_it_and_keeps_its_log(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    # A bad value in the definition itself (a bad --param is refused before any step runs)
    definition = json.loads(json.dumps(local_definition))
    train = next(s for s in all_steps(definition) if s["Name"] == "TrainModel")
    train["Arguments"]["HyperParameters"]["mini_batch_size"] = "0"
    with pytest.raises(StepFailed, match=r"step TrainModel failed: .*mini_batch_size") as info:
        _run(definition, tmp_path, InputDataUrl=str(tiny_data))
    log_path = Path(str(info.value).rsplit("log: ", 1)[1])
    assert log_path.is_file() and "mini_batch_size" in log_path.read_text()
    record = json.loads((log_path.parent.parent.parent / "run.json").read_text())
    assert record["status"] == "Failed"
    assert record["steps"]["Preprocess"] == "Succeeded" and record["steps"]["TrainModel"] == "Failed"
    assert "EvaluateModel" not in record["steps"]


def test_a_broken_input_fails_in_preprocess(local_definition: dict[str, Any], tmp_path: Path) -> None:
    data = tmp_path / "broken"
    data.mkdir()
    (data / "u.data").write_text("this is not\ta ratings file\n")
    with pytest.raises(StepFailed, match="step Preprocess failed"):
        _run(local_definition, tmp_path, InputDataUrl=str(data))


def test_expressions_resolve_like_sagemaker(tmp_path: Path) -> None:
    definition = {"Parameters": [{"Name": "T", "Type": "Float", "DefaultValue": 4.0}], "Steps": []}
    run = LocalRun(definition, tmp_path, "run-1", parse_parameters(definition, {}), Registry(tmp_path), print)
    props = {
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {"S3Uri": "s3://b/t"}}]}
    }
    run.properties["Pre"] = props
    (tmp_path / "eval.json").write_text(json.dumps({"model": {"auc": 0.75}, "xs": [1, 2]}))
    run.property_files["Eval"] = {"Report": tmp_path / "eval.json"}
    join = {
        "Std:Join": {"On": "/", "Values": [{"Get": "Execution.PipelineExecutionId"}, {"Get": "Parameters.T"}]}
    }
    assert run.resolve(join) == "run-1/4.0"
    assert (
        run.resolve({"Get": "Steps.Pre.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}) == "s3://b/t"
    )
    json_get = {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"}, "Path": "model.auc"}
    }
    assert run.resolve(json_get) == 0.75
    assert walk({"xs": [1, 2]}, "xs[1]", "doc") == 2
    assert run.local_path("s3://b/t/x") == tmp_path / "s3" / "b" / "t" / "x"
    assert run._check({"Type": "GreaterThanOrEqualTo", "LeftValue": json_get, "RightValue": 0.75})
    at_least_t = {"Type": "GreaterThan", "LeftValue": json_get, "RightValue": {"Get": "Parameters.T"}}
    assert not run._check(at_least_t)


def test_ranking_objective_runs_preprocess_and_training_on_sampled_rows(
    local_definition: dict[str, Any], tiny_data: Path, tmp_path: Path
) -> None:
    """The default objective: preprocess samples negatives, the FM twin trains on them, holdout/ appears."""
    params = {"InputDataUrl": str(tiny_data), "NegativesPerPositive": "2", "NegativeExponent": "0.5"}
    shown: list[str] = []
    result = run_local(  # the gate's outcome is the evaluation's business
        local_definition,
        runs_root=tmp_path / "pipeline",
        registry=Registry(tmp_path / "registry"),
        overrides=params,
        progress=shown.append,
    )
    assert result.steps["Preprocess"] == result.steps["TrainModel"] == "Succeeded"
    # progress: where each step's log is, and a line per training epoch with its metrics
    log_path = result.folder / "steps" / "TrainModel" / "step.log"
    assert f"step TrainModel (Training) ... log: {log_path}" in shown
    epochs = int(
        json.loads((log_path.parent / "job/input/config/hyperparameters.json").read_text())["epochs"]
    )
    lines = [m for m in shown if m.startswith("step TrainModel: epoch ")]
    assert [m.split(" (")[0] for m in lines] == [
        f"step TrainModel: epoch {e}/{epochs}" for e in range(1, epochs + 1)
    ]
    assert all("train cross_entropy " in m for m in lines)
    # the test channel is scored once, after the last epoch (as SageMaker's FM)
    assert ["; test cross_entropy " in m for m in lines] == [False] * (epochs - 1) + [True]
    [manifest_path] = result.folder.glob("s3/*/pipeline/*/preprocess/manifest/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["objective"] == "ranking" and manifest["sampling"]["negatives_per_positive"] == 2
    assert manifest["sampling"]["negative_exponent"] == 0.5
    assert manifest["sampling"]["train"]["sampled_negatives"] > 0
    [holdout] = result.folder.glob("s3/*/pipeline/*/preprocess/holdout/ratings.tsv")
    assert holdout.read_text().splitlines()[0] == "user_id\tmovie_id\trating"
    assert len(holdout.read_text().splitlines()) == manifest["counts"]["test_ratings"] + 1
    hp = json.loads((result.folder / "steps/TrainModel/job/input/config/hyperparameters.json").read_text())
    assert hp["predictor_type"] == "binary_classifier"
