"""Item 10 of issue 24: the exported embeddings and formula reproduce the served score, history included."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fmrec.features.neighbours import served_model
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.serving.lookup import read_lookup
from fmrec.serving.requests import build_requests
from fmrec_cli.main import main
from twins.endpoint import protocol

pytestmark = pytest.mark.slow  # trains a model


def _rows(path: Path, skip: int) -> dict[int, tuple[float, np.ndarray]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        return {int(r[0]): (float(r[skip]), np.array([float(x) for x in r[skip + 1 :]])) for r in reader}


def test_exported_formula_reproduces_the_endpoint_score(pre: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    args = ["model", "export", "--model", str(trained), "--lookup", str(pre / "lookup"), "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "export.json").read_text())
    lookup = read_lookup(pre / "lookup")
    assert lookup.columns.history is not None  # the pipeline's default layout, with the history block
    table = lookup.neighbours  # the default's neighbour column: one more column, its term added
    assert table is not None and lookup.columns.neighbours is not None
    assert summary["folded"] and summary["other_feature_columns"] == lookup.columns.history.size + 1
    with open(out / "features.csv", encoding="utf-8") as fh:
        assert sum(1 for _ in fh) - 1 == summary["other_feature_columns"]  # every history column, labelled

    users, movies = _rows(out / "users.csv", 1), _rows(out / "items.csv", 2)
    nb = summary["neighbours"]
    W: dict[tuple[int, int], float] = {}
    with open(out / "neighbours.csv", newline="", encoding="utf-8") as fh:
        for src, dst, weight in list(csv.reader(fh))[1:]:
            W[int(src), int(dst)] = float(weight)
    assert len(W) == len(table.targets) and nb["served_cap"] >= max(
        len(lookup.rated_positions(u)) for u in (0, 7)
    )
    model = served_model(load_model_tar(trained), table)  # what the evaluate step registers and serves
    for user_pos in (0, 7, len(lookup.user_ids) - 1):
        user_id = lookup.user_ids[user_pos]
        [payload] = build_requests(lookup, user_pos)  # what the API sends the endpoint: every movie
        X = protocol.parse_request(payload.body, protocol.JSON, model.params.feature_dim)
        served = fm.predict(model.params, X, model.predictor_type)
        bu, pu = users[user_id]
        rated = [lookup.movie_ids[h] for h in lookup.rated_positions(user_pos)]
        for movie_pos, score in zip(payload.movie_positions, served, strict=True):
            movie_id = lookup.movie_ids[movie_pos]
            bm, qm = movies[movie_id]
            g = nb["scale"] / math.sqrt(len(rated)) * sum(W.get((h, movie_id), 0.0) for h in rated)
            raw = summary["global_bias"] + bu + bm + float(pu @ qm) + nb["weight"] * g
            assert math.isclose(1 / (1 + math.exp(-raw)), float(score), rel_tol=1e-4, abs_tol=1e-6)
