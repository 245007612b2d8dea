"""The local tuner's NDCG@10 objective: a ratings-level carve from train, scored as the evaluate step."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.data.readers import read_ratings
from fmrec.data.synth import SynthConfig, write_synth
from fmrec.evaluation.holdout import read_holdout
from fmrec.evaluation.ranking import ranking_metrics_at_k
from fmrec.evaluation.scorers import fm_scorer
from fmrec.features.options import PreprocessConfig
from fmrec.model.artifact import load_model_tar
from fmrec.stages.evaluate import evaluate, read_inputs
from fmrec.stages.preprocess import preprocess, run
from fmrec.tuning.fm_trial import FMTrial, TrialData
from fmrec.tuning.job import config_from_request
from fmrec.tuning.ranking import (
    NEIGHBOUR_KEEPS,
    NEIGHBOUR_L2S,
    NEIGHBOUR_WEIGHTS,
    RankingData,
    carve_dataset,
    load_validation,
    manifest_config,
    neighbour_grid,
)
from fmrec.tuning.space import NDCG_OBJECTIVE, TuningError, resolve_objective
from fmrec.tuning.split import carve, split_rows
from fmrec_cli.main import main as fmrec
from pipeline.tuning import TuningOptions

pytestmark = pytest.mark.slow

TINY_HP = {
    "predictor_type": "binary_classifier",
    "num_factors": "8",
    "epochs": "3",
    "mini_batch_size": "500",
    "factors_lr": "0.01",
    "linear_lr": "0.01",
    "factors_wd": "0.0001",
}
SMALL = ["--range", "epochs=2:3", "--range", "num_factors=4:8", "--range", "mini_batch_size=300:1000"]


@pytest.fixture(scope="module")
def synth_processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(MovieLens-layout folder, its default preprocess output): 150 users, 300 movies, 9,000 ratings."""
    root = tmp_path_factory.mktemp("ndcg")
    write_synth(root / "data", SynthConfig(users=150, items=300, ratings=9000))
    run(root / "data", root / "processed", PreprocessConfig())  # the defaults: ranking rows with history
    return root / "data", root / "processed"


def _pairs(users: np.ndarray, movies: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(users.tolist(), movies.tolist(), strict=True))


def _carve_folder(data: Path, processed: Path, out: Path) -> RankingData:
    cfg, _ = manifest_config(processed)
    out.mkdir(parents=True)
    preprocess(data, out, cfg, dataset=carve_dataset(data, cfg, 10, 0))
    return RankingData(str(out), float(cfg.threshold))


def test_the_carve_takes_validation_ratings_from_train_only(
    synth_processed: tuple[Path, Path], tmp_path: Path
) -> None:
    data, processed = synth_processed
    base = read_ratings(data / "ua.base", "\t")
    test = read_ratings(data / "ua.test", "\t")
    cfg, _ = manifest_config(processed)
    carved = carve_dataset(data, cfg, 10, 0)
    assert carved.test is not None and len(carved.test) > 0
    held, fit = _pairs(carved.test.user, carved.test.movie), _pairs(carved.train.user, carved.train.movie)
    assert held <= _pairs(base.user, base.movie)
    assert not held & _pairs(test.user, test.movie)  # no test rating is a validation rating
    assert not held & fit and len(held) + len(fit) == len(base)  # train, split in two

    # The carved channels do not change when the test file does: nothing of it is read into them.
    first = _carve_folder(data, processed, tmp_path / "a")
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    flipped = []
    for line in (changed / "ua.test").read_text().splitlines():
        user, movie, rating, stamp = line.split("\t")
        flipped.append(f"{user}\t{movie}\t{6 - int(rating)}\t{stamp}\n")  # every test rating changes
    (changed / "ua.test").write_text("".join(flipped))
    second = _carve_folder(changed, processed, tmp_path / "b")
    for name in ("train/part-00000.pbr", "test/part-00000.pbr", "holdout/ratings.tsv"):
        assert (Path(first.folder) / name).read_bytes() == (Path(second.folder) / name).read_bytes(), name


def test_ndcg_objective_equals_the_evaluate_steps_figure(
    synth_processed: tuple[Path, Path], tmp_path: Path
) -> None:
    data, processed = synth_processed
    ranking = _carve_folder(data, processed, tmp_path / "carved")
    trial = FMTrial(
        TrialData(ranking.train, ranking.validation),
        NDCG_OBJECTIVE.metric_name,
        NDCG_OBJECTIVE.metric_key,
        ranking,
    )
    hp = {
        **TINY_HP,
        "feature_dim": str(
            json.loads((Path(ranking.folder) / "manifest/manifest.json").read_text())["feature_dim"]
        ),
    }
    model = tmp_path / "model" / "model.tar.gz"
    curve, final = trial(hp, lambda _curve: False, model)
    assert len(curve) == 3 and final == curve[-1] and 0.0 < final < 1.0

    # The evaluate step on the same model and the carved folder (its holdout = the validation ratings).
    base = tmp_path / "eval"
    (base / "input").mkdir(parents=True)
    (base / "input" / "model").symlink_to(model.parent)
    for name in ("train", "test", "lookup", "holdout"):
        (base / "input" / name).symlink_to(Path(ranking.folder) / name)
    doc = evaluate(read_inputs(base), "ranking")
    assert final == pytest.approx(doc["ranking"]["model"]["ndcg_at_10"], rel=1e-12)
    # the neighbour grid: the lookup's cell is the same figure; weight 0 is the FM alone (fm_scorer's ranking)
    nb = neighbour_grid(ranking, model, (200.0, 1000.0), (10,), (0.0, 0.2))
    assert nb is not None and nb["lookup"]["ndcg_at_10"] == pytest.approx(final, rel=1e-12)
    assert nb["ndcg_at_10"]["200/10"]["0.2"] == pytest.approx(final, rel=1e-9)
    validation = load_validation(ranking)
    alone = fm_scorer(load_model_tar(model).params, *validation.rows)
    expected = ranking_metrics_at_k(alone, validation.task, 10)["ndcg_at_10"]
    assert nb["ndcg_at_10"]["200/10"]["0"] == pytest.approx(expected, rel=1e-9)
    assert nb["ndcg_at_10"]["1000/10"]["0"] == pytest.approx(expected, rel=1e-9)  # no weight: no table
    assert nb["ndcg_at_10"]["1000/10"]["0.2"] != nb["ndcg_at_10"]["200/10"]["0.2"]  # another table
    held = read_holdout(Path(ranking.folder) / "holdout")
    assert doc["ranking"]["users_total"] == len(set(held.user[held.rating >= 4].tolist()))


def test_tune_local_with_the_ndcg_objective_writes_the_best(
    synth_processed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, processed = synth_processed
    out = tmp_path / "tune"
    argv = ["tune", "--local", "--train", str(processed / "train"), "--out", str(out)]
    argv += ["--objective-metric", "validation:ndcg_at_10", "--max-jobs", "3", "--max-parallel", "1", *SMALL]
    assert fmrec(argv) == 0
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["objective"]["MetricName"] == "validation:ndcg_at_10"
    rows = [r for r in csv.DictReader((out / "trials.csv").open()) if r["status"] == "Completed"]
    assert len(rows) >= 2
    assert max(float(r["objective"]) for r in rows) == pytest.approx(best["objective"]["Value"], abs=1e-6)
    record = json.loads((out / "tuning_job.json").read_text())
    assert record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
    # the recommended model served with each neighbour table and weight on the same carve (the defaults have
    # the column): the grid holds every cell, its best is printed as pipeline parameters
    nb = json.loads((out / "neighbour_settings.json").read_text())
    assert set(nb["ndcg_at_10"]) == {f"{lam:g}/{keep}" for lam in NEIGHBOUR_L2S for keep in NEIGHBOUR_KEEPS}
    cells = [v for row in nb["ndcg_at_10"].values() for v in row.values()]
    assert len(cells) == len(NEIGHBOUR_L2S) * len(NEIGHBOUR_KEEPS) * len(NEIGHBOUR_WEIGHTS)
    best = nb["best"]
    assert best["ndcg_at_10"] == max([*cells, nb["lookup"]["ndcg_at_10"]])
    assert nb["pipeline_parameters"] == {
        "NeighbourL2": f"{best['l2']:g}",
        "NeighbourTargets": str(best["keep"]),
        "NeighbourWeight": f"{best['weight']:g}",
    }
    # the lookup's cell (200 / 10 / 0.2) is in the grid, refitted on the same ratings: the same figure, and
    # it is the recommended model's objective
    own = nb["lookup"]
    assert (own["l2"], own["keep"], own["weight"]) == (200.0, 10, 0.2)
    assert nb["ndcg_at_10"]["200/10"]["0.2"] == pytest.approx(own["ndcg_at_10"], abs=1e-9)
    default = json.loads((out / "default_settings.json").read_text())
    best_row = max(rows, key=lambda r: float(r["objective"]))
    keep_default = default["value"] >= float(best_row["objective"])
    assert nb["model"] == ("the default settings" if keep_default else best_row["name"])
    figure = default["value"] if keep_default else float(best_row["objective"])
    assert own["ndcg_at_10"] == pytest.approx(figure, abs=1e-6)
    # the validation ratings it scored are train ratings (ua.base), none of ua.test
    held = read_holdout(out / "validation" / "holdout")
    base = read_ratings(data / "ua.base", "\t")
    assert _pairs(held.user, held.movie) <= _pairs(base.user, base.movie)
    # one printed command carries both choices: the recommended model's settings and its neighbour cell
    line = next(x for x in capsys.readouterr().out.splitlines() if "pipeline with that cell:" in x)
    assert "pipeline run --local" in line
    chosen = {} if keep_default else best_params(out)
    for k, v in {**chosen, **nb["pipeline_parameters"]}.items():
        assert f"--param {k}={v}" in line


def best_params(out: Path) -> dict[str, str]:
    """The best trial's pipeline parameters, as best_hyperparameters.json records them."""
    saved = json.loads((out / "best_hyperparameters.json").read_text())
    return {k: str(v) for k, v in saved["pipeline_parameters"].items()}


def test_the_ndcg_objective_is_local_only_and_needs_ratings(
    synth_processed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert resolve_objective("binary_classifier", "validation:ndcg_at_10", local=True) is NDCG_OBJECTIVE
    with pytest.raises(TuningError, match="can only read the algorithm's own metrics"):
        TuningOptions(objective="validation:ndcg_at_10")
    request = {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:ndcg_at_10"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "2"}]
            },
        },
        "TrainingJobDefinition": {"StaticHyperParameters": {"predictor_type": "binary_classifier"}},
    }
    with pytest.raises(TuningError, match="not emitted by FM"):
        config_from_request(request)
    with pytest.raises(TuningError, match="binary_classifier"):
        resolve_objective("regressor", "validation:ndcg_at_10", local=True)
    _, processed = synth_processed
    base = ["tune", "--local", "--out", str(tmp_path / "x"), "--objective-metric", "validation:ndcg_at_10"]
    assert fmrec([*base, "--train", str(processed / "train"), "--validation-fraction", "0.2"]) != 0
    assert "ratings carved from train" in capsys.readouterr().err
    lone = tmp_path / "lone" / "train"
    shutil.copytree(processed / "train", lone)
    assert fmrec([*base, "--train", str(lone)]) != 0
    assert "no preprocess manifest" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _pair_keys(X: sp.csr_matrix) -> list[tuple[int, int]]:
    X = X.sorted_indices()
    return [(int(X.indices[a]), int(X.indices[a + 1])) for a in X.indptr[:-1]]


def test_the_row_carve_keeps_every_row_of_a_pair_on_one_side(synth_processed: tuple[Path, Path]) -> None:
    """CarveValidation on ranking rows: a liked rating's two rows (PositiveRule 'weighted') never straddle."""
    _, processed = synth_processed
    X, y = read_spmatrix(processed / "train")
    assert y is not None
    keys = _pair_keys(X)
    assert len(set(keys)) < len(keys)  # the channel has repeated pairs: a row-level split would leak them
    X_fit, _, X_val, y_val = carve(X, y, 0.1, 0)
    fit, val = set(_pair_keys(X_fit)), _pair_keys(X_val)
    assert not fit & set(val)
    assert X_fit.shape[0] + X_val.shape[0] == X.shape[0]
    assert 0 < y_val.mean() < 1  # positives with their sampled negatives
    assert abs(len(set(val)) - round(0.1 * len(set(keys)))) == 0


def test_with_one_row_per_pair_the_carve_is_the_plain_row_draw() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, n = 40, 50, 500
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([pairs // n_items, n_users + pairs % n_items], 1).ravel()
    X = sp.csr_matrix((np.ones(2 * n, np.float32), (rows, cols)), shape=(n, n_users + n_items))
    y = rng.integers(0, 2, n).astype(np.float32)
    fit, val = split_rows(n, 0.1, 7)
    X_fit, y_fit, X_val, y_val = carve(X, y, 0.1, 7)
    assert (X_val != X[val]).nnz == 0 and (X_fit != X[fit]).nnz == 0
    assert np.array_equal(y_val, y[val]) and np.array_equal(y_fit, y[fit])


def test_a_failing_neighbour_grid_loses_nothing_of_the_search(
    synth_processed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise MemoryError("no room for the gram matrix")

    monkeypatch.setattr("fmrec.tuning.ranking.neighbour_grid", broken)
    _, processed = synth_processed
    out = tmp_path / "tune"
    argv = ["tune", "--local", "--train", str(processed / "train"), "--out", str(out)]
    argv += ["--objective-metric", "validation:ndcg_at_10", "--max-jobs", "1", "--max-parallel", "1", *SMALL]
    assert fmrec(argv) == 0  # advice only: the search's results stand
    assert (out / "best_hyperparameters.json").is_file() and not (out / "neighbour_settings.json").exists()
