"""The tiny serving world with a history block (the ranking objective's layout), for fold-in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.model.artifact import save_model_tar
from fmrec.model.fm import predict
from fmrec.serving.lookup import LookupHistory, UserSide, write_lookup
from tests.support.lambda_world import USERS, World, make_lookup, make_model
from twins.api.publish import publish_version


def history_lookup(scale: float = 1.0, users: tuple[int, ...] = USERS) -> Any:
    """The tiny world's lookup with a history block after the movie block, as preprocess lays it out."""
    lookup = make_lookup(users)
    offset = lookup.feature_dim
    lookup.feature_dim = offset + lookup.n_movies
    lookup.history = LookupHistory(offset=offset, scale=scale, cap=64)
    lookup.check()
    return lookup


def build_history_world(
    root: Path, version: str = "v1", seed: int = 0, users: tuple[int, ...] = USERS
) -> World:
    lookup = history_lookup(users=users)
    model = make_model(lookup.feature_dim, seed)
    lookup_dir = root / f"lookup-{version}"
    write_lookup(lookup_dir, lookup)
    model_path = root / f"model-{version}.tar.gz"
    save_model_tar(model, model_path)
    artifacts = root / "serving"
    publish_version(artifacts, version, lookup_dir, model_path)
    return World(root, artifacts, lookup, model, model_path, version)


def side_scores(world: World, side: UserSide, movie_positions: list[int]) -> list[float]:
    """The model's scores of a user side against movies, computed here from the FM math (the oracle)."""
    lookup, model = world.lookup, world.model
    rows, cols, vals = [], [], []
    for i, pos in enumerate(movie_positions):
        keys = [*side.keys, *lookup.movie_keys(pos)]
        values = [*side.values, *[1.0] * len(lookup.movie_keys(pos))]
        rows += [i] * len(keys)
        cols += keys
        vals += values
    shape = (len(movie_positions), lookup.feature_dim)
    X = sp.csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float32)
    return [float(s) for s in predict(model.params, X, model.predictor_type)]
