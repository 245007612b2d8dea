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
from fmrec.features.neighbours import fit_tables, served_model, served_table, with_blend_weight
from fmrec.features.options import PreprocessConfig
from fmrec.model import fm
from fmrec.model.artifact import FMModel, load_model_tar
from fmrec.serving.lookup import Lookup, read_lookup

# The neighbour settings neighbour_grid tries: the weights (0: the FM alone), the lambdas and the cuts; the
# carves of docs/tuning.md chose weights 0.1-0.8, lambdas 200-500 and cuts 10-25 on three shapes
NEIGHBOUR_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
NEIGHBOUR_L2S = (100.0, 200.0, 500.0, 1000.0, 2000.0)
NEIGHBOUR_KEEPS = (10, 25, 50)
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


def neighbour_grid(
    data: RankingData,
    model_tar: Path,
    l2s: tuple[float, ...] = NEIGHBOUR_L2S,
    keeps: tuple[int, ...] = NEIGHBOUR_KEEPS,
    weights: tuple[float, ...] = NEIGHBOUR_WEIGHTS,
) -> dict[str, Any] | None:
    """NDCG@10 on the validation carve of one model served with each neighbour table (lambda, cut) refitted on
    the carve's train ratings and each weight, and the best cell (ties: the lookup's own settings first);
    None when the carve's lookup has no neighbour table. No row carries the column, so a cell costs a table
    fit and scoring, not training: the per-catalogue choice the pipeline, which trains once, cannot make."""
    validation = load_validation(data)
    lookup, table = validation.lookup, validation.lookup.neighbours
    if table is None:
        return None
    model = load_model_tar(model_tar)
    movies = manifest_config(Path(data.folder))[0].neighbour_movies  # the carve's preprocess settings
    own = (table.l2, table.keep, table.weight)
    grid: dict[str, dict[str, float]] = {}
    cells: list[tuple[float, tuple[float, int, float]]] = []
    for l2 in l2s:
        fitted = fit_tables(train_matrix(lookup), l2, keeps, movies)
        for keep, fit in fitted.items():
            served = dataclasses.replace(
                lookup, neighbours=served_table(fit, table.column, keep, l2, table.weight)
            )
            row = grid.setdefault(f"{l2:g}/{keep}", {})
            for weight in weights:
                scorer = model_scorer(with_blend_weight(model, table.column, weight), served, validation.rows)
                row[f"{weight:g}"] = ndcg = ranking_metrics_at_k(scorer, validation.task, K)[f"ndcg_at_{K}"]
                cells.append((ndcg, (l2, keep, weight)))
    # the lookup's own cell, scored on its own table, is a candidate too (and wins ties)
    mine = model_scorer(served_model(model, table), lookup, validation.rows)
    own_ndcg = ranking_metrics_at_k(mine, validation.task, K)[f"ndcg_at_{K}"]
    ndcg, (l2, keep, weight) = max([*cells, (own_ndcg, own)], key=lambda c: (c[0], c[1] == own))
    return {
        "ndcg_at_10": grid,
        "best": {"l2": l2, "keep": keep, "weight": weight, "ndcg_at_10": ndcg},
        "lookup": {
            "l2": table.l2,
            "keep": table.keep,
            "weight": table.weight,
            "ndcg_at_10": own_ndcg,
        },
        "pipeline_parameters": {
            "NeighbourL2": f"{l2:g}",
            "NeighbourTargets": str(keep),
            "NeighbourWeight": f"{weight:g}",
        },
    }
