"""The local tuner's ranking objective: NDCG@10 on ratings carved from train, never from the test set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.data.readers import Dataset, holdout_split, load_dataset
from fmrec.errors import InputError
from fmrec.evaluation.holdout import read_holdout
from fmrec.evaluation.ranking import K, RankingTask, ranking_metrics_at_k, ranking_task
from fmrec.evaluation.scorers import lookup_rows, model_scorer, train_matrix
from fmrec.features.manifest import MANIFEST_FILE, read_manifest
from fmrec.features.neighbours import served_model, with_blend_weight
from fmrec.features.options import PreprocessConfig
from fmrec.model import fm
from fmrec.model.artifact import FMModel, load_model_tar
from fmrec.serving.lookup import Lookup, read_lookup

# The blend weights neighbour_weight_curve tries (0: the FM alone); the carves of docs/tuning.md chose 0.1-0.8
NEIGHBOUR_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
# ua.test holds out 10 ratings per user; the validation carve takes as many from each user's train ratings.
DEFAULT_VALIDATION_PER_USER = 10
CARVE_FILE = "validation_carve.json"


def carve_ratings(ds: Dataset, per_user: int, seed: int) -> Dataset:
    """`ds` with `per_user` random train ratings of every user who has more held out as its test ratings.

    The result's train is the rest of ds.train; ds.test (the quality gate's test set) is dropped unread, so
    nothing of it can reach the tuner.
    """
    if per_user < 1:
        raise InputError(f"--validation-per-user {per_user}: expected a positive number of ratings")
    fit, held = holdout_split(ds.train, per_user, seed)
    if len(held) == 0:
        raise InputError(
            f"validation carve: no user has more than {per_user} train ratings; lower --validation-per-user"
        )
    return dataclasses.replace(ds, train=fit, test=held, split=f"{ds.split}-train-carve")


def manifest_config(processed: Path) -> tuple[PreprocessConfig, dict[str, Any]]:
    """The preprocess settings (and the manifest) of a preprocess output folder: the carve reuses them."""
    path = processed / MANIFEST_FILE
    if not path.is_file():
        raise InputError(
            f"{path}: no preprocess manifest; the ranking objective re-preprocesses the train ratings with "
            "the train channel's settings, so --train must be the train/ folder of a preprocess output"
        )
    manifest = read_manifest(path).as_dict()
    raw = dict(manifest["config"]) if isinstance(manifest["config"], dict) else {}
    if not raw:
        raise InputError(f"{path}: not a preprocess manifest with a 'config' object")
    known = {f.name for f in dataclasses.fields(PreprocessConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{path}: config field(s) {', '.join(unknown)} unknown to this fmrec version")
    raw["aux"] = tuple(raw.get("aux", ()))
    raw.setdefault("aux_value", 1.0)  # a manifest older than --aux-value: its aux columns were written at 1
    raw.setdefault("neighbours", 0)  # a manifest older than --neighbours: it had no neighbour table
    # one train file: the carve is read back whole
    return dataclasses.replace(PreprocessConfig(**raw), shards=1), manifest


def carve_dataset(data_dir: str | Path, cfg: PreprocessConfig, per_user: int, seed: int) -> Dataset:
    """Read `data_dir` as the preprocess step does (same split); carve validation ratings from its train."""
    ds = load_dataset(data_dir, cfg.split, cfg.holdout_per_user, cfg.seed, cfg.max_reject_fraction)
    return carve_ratings(ds, per_user, seed)


def carve_record(carved: Dataset, per_user: int, seed: int) -> dict[str, Any]:
    """validation_carve.json: what was held out of train, by whom (the test ratings are never read)."""
    held = carved.test
    return {
        "validation_per_user": per_user,
        "seed": seed,
        "fit_ratings": len(carved.train),
        "validation_ratings": 0 if held is None else len(held),
        "validation_users": 0 if held is None else int(np.unique(held.user).size),
        "note": "validation ratings are carved from the train ratings; the test ratings are never read",
    }


@dataclass(frozen=True)
class RankingData:
    """A preprocess output of carved data (train, test, lookup, holdout); picklable, loaded per process."""

    folder: str
    threshold: float

    @property
    def train(self) -> str:
        return str(Path(self.folder) / "train")

    @property
    def validation(self) -> str:
        return str(Path(self.folder) / "test")


@dataclass(frozen=True)
class RankingValidation:
    """The ranking task of the held-out validation ratings and the carve's lookup (its feature rows and, when
    preprocess fitted one, its neighbour table)."""

    task: RankingTask
    lookup: Lookup
    rows: tuple[Any, Any]  # lookup_rows(lookup), built once: every epoch of every trial scores them

    def metrics(self, params: fm.FMParams) -> dict[str, float]:
        """P@10, recall@10, NDCG@10, MAP@10 and coverage of `params`, exactly as the evaluate step scores: the
        served model (the neighbour column at its blend weight, when the lookup has a table)."""
        model = served_model(FMModel(params, "binary_classifier"), self.lookup.neighbours)
        return ranking_metrics_at_k(model_scorer(model, self.lookup, self.rows), self.task, K)


_CACHE: dict[RankingData, RankingValidation] = {}


def load_validation(data: RankingData) -> RankingValidation:
    """The validation task of a carved folder, built once per process (the evaluate step's own calls)."""
    cached = _CACHE.get(data)
    if cached is not None:
        return cached
    lookup = read_lookup(Path(data.folder) / "lookup")
    held = read_holdout(Path(data.folder) / "holdout")
    task = ranking_task(
        held.user,
        held.movie,
        held.rating,
        data.threshold,
        np.asarray(lookup.user_ids, dtype=np.int64),
        np.asarray(lookup.movie_ids, dtype=np.int64),
        train_matrix(lookup),
    )
    _CACHE.clear()
    _CACHE[data] = RankingValidation(task, lookup, lookup_rows(lookup))
    return _CACHE[data]


def neighbour_weight_curve(
    data: RankingData, model_tar: Path, weights: tuple[float, ...] = NEIGHBOUR_WEIGHTS
) -> dict[str, Any] | None:
    """NDCG@10 on the validation carve of one model served at each neighbour weight, and the best weight
    (ties: the one nearer the lookup's own); None when the carve's lookup has no neighbour table. Only the
    served model's weight changes, so a curve costs scoring, not training: the per-catalogue choice of
    NeighbourWeight that the pipeline, which trains once, cannot make (docs/tuning.md)."""
    validation = load_validation(data)
    table = validation.lookup.neighbours
    if table is None:
        return None
    model = load_model_tar(model_tar)
    curve = {}
    for weight in weights:
        served = with_blend_weight(model, table.column, weight)
        scorer = model_scorer(served, validation.lookup, validation.rows)
        curve[weight] = ranking_metrics_at_k(scorer, validation.task, K)[f"ndcg_at_{K}"]
    best = max(weights, key=lambda w: (curve[w], -abs(w - table.weight)))
    return {
        "ndcg_at_10": {f"{w:g}": curve[w] for w in weights},
        "best": best,
        "lookup_weight": table.weight,
        "pipeline_parameters": {"NeighbourWeight": f"{best:g}"},
    }
