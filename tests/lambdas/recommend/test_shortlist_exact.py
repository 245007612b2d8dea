"""The endpoint path's shortlist: for every user of an ml-100k-shaped catalogue, the served top k is the exact
full-catalogue top k, and every InvokeEndpoint body fits the default request size; so for users folded in from
their stored ratings (fmrec.ratings.fold_in), new to the model or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmrec.data.synth import SynthConfig, write_synth
from fmrec.evaluation.scorers import model_scorer
from fmrec.features.options import PreprocessConfig
from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.fm import FMParams, predict
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import Rating
from fmrec.serving.lookup import Lookup, UserSide, read_lookup
from fmrec.serving.ranking import feature_rows
from fmrec.stages.preprocess import run as preprocess
from lambdas.recommend.bundle import DEFAULT_REQUEST_BYTES, DEFAULT_SHORTLIST
from lambdas.recommend.queries import Query
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.scoring_caller import ScoringCaller
from twins.api.publish import publish_version

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Synthetic ml-100k through preprocess's defaults (the ranking objective's history block), a random
    16-factor model published as v1 (weights small enough that no score saturates the sigmoid to a tie)."""
    root = tmp_path_factory.mktemp("ml100k")
    write_synth(root / "data", SynthConfig())
    preprocess(root / "data", root / "prep", PreprocessConfig())
    lookup = read_lookup(root / "prep" / "lookup")
    assert lookup.history is not None  # the default objective serves the history columns
    rng = np.random.default_rng(11)
    d = lookup.feature_dim
    params = FMParams(
        0.1, rng.normal(0, 0.2, d).astype(np.float32), rng.normal(0, 0.2, (d, 16)).astype(np.float32)
    )
    model = FMModel(params, "binary_classifier", {"feature_dim": str(d)}, {})
    save_model_tar(model, root / "model.tar.gz")
    publish_version(root / "serving", "v1", root / "prep" / "lookup", root / "model.tar.gz")
    return {"lookup": lookup, "model": model, "artifacts": root / "serving"}


@pytest.mark.parametrize(("k", "exclude_rated", "every"), [(10, True, 1), (100, False, 7)])
def test_the_served_top_k_is_the_exact_full_catalogue_top_k_for_every_user(
    ml100k: dict[str, Any], k: int, exclude_rated: bool, every: int
) -> None:
    lookup, model = ml100k["lookup"], ml100k["model"]
    # the evaluate step's raw scores (FM plus the default's neighbour column): the API must rank as it judged
    exact = model_scorer(model, lookup)(np.arange(lookup.n_users))
    caller = ScoringCaller(model, lookup, delay=0)
    served = Recommender(DirStore(ml100k["artifacts"]), caller)  # type: ignore[arg-type]
    users = list(enumerate(lookup.user_ids))[::every]  # k=100 (N = k, no margin): every 7th user
    for pos, user in users:
        row = exact[pos].copy()
        if exclude_rated:
            row[lookup.rated_positions(pos)] = -np.inf
        expected = sorted(range(lookup.n_movies), key=lambda p: (-row[p], p))[:k]
        got = served.recommend(Query(user, k=k, exclude_rated=exclude_rated))
        assert got.serving_path == "endpoint"
        # the endpoint scores in float32, the oracle in float64: two movies a few float32 steps apart (1e-6)
        # may trade places, nothing else may differ
        got_pos = [lookup.movie_position(it.movie_id) for it in got.items]
        assert len(got_pos) == len(expected) == len(set(got_pos)), user
        pairs = zip(got_pos, expected, strict=True)
        assert all(g == e or abs(row[g] - row[e]) < 1e-6 for g, e in pairs), user
    assert max(map(len, caller.bodies)) <= DEFAULT_REQUEST_BYTES
    # The shortlist is N = max(FMREC_SHORTLIST, k) movies a request, never the catalogue.
    assert sum(b.count(b'"keys"') for b in caller.bodies) == len(users) * max(DEFAULT_SHORTLIST, k)


def _every_movie(model: FMModel, lookup: Lookup, side: UserSide) -> np.ndarray:
    """The endpoint's score of every movie for a user side: one full sparse row per movie (the oracle), with
    the neighbour column's value from the served table."""
    table = lookup.neighbours
    assert table is not None  # the defaults have one
    g = table.values(side.rated, range(lookup.n_movies))
    keys = [[*side.keys, *lookup.movie_keys(p), table.column] for p in range(lookup.n_movies)]
    values = [[*side.values, *[1.0] * len(lookup.movie_keys(p)), g[p]] for p in range(lookup.n_movies)]
    return predict(model.params, feature_rows(keys, values, lookup.feature_dim), model.predictor_type)


def test_a_folded_in_users_served_top_k_is_the_exact_top_k(ml100k: dict[str, Any], tmp_path: Path) -> None:
    lookup, model = ml100k["lookup"], ml100k["model"]
    rng = np.random.default_rng(5)
    store = SqliteRatings(tmp_path / "ratings.db")
    new_users = [10_000_000 + i for i in range(12)]  # ids the model was not trained on
    known = [lookup.user_ids[p] for p in rng.choice(lookup.n_users, 8, replace=False)]
    for user in new_users + known:
        picked = rng.choice(lookup.n_movies, int(rng.integers(1, 40)), replace=False)
        store.put(
            user, [Rating(user, lookup.movie_ids[p], 4.0, 1_700_000_000 + i) for i, p in enumerate(picked)]
        )
    caller = ScoringCaller(model, lookup, delay=0)
    served = Recommender(DirStore(ml100k["artifacts"]), caller, ratings=store)  # type: ignore[arg-type]
    for user in new_users + known:
        pos = lookup.user_position(user)
        trained = lookup.rated_positions(pos) if pos is not None else []
        stored = [lookup.movie_position(r.movie_id) for r in store.get(user)]
        side = lookup.user_side(pos, history=[*trained, *stored])  # the whole history, served_history's bound
        row = _every_movie(model, lookup, side)
        row[list(side.rated)] = -np.inf
        expected = sorted(range(lookup.n_movies), key=lambda p: (-row[p], p))[:10]
        got = served.recommend(Query(user, k=10))
        assert got.serving_path == ("fold_in" if pos is None else "endpoint"), user
        assert got.stored_ratings == len(set(stored) - set(trained))
        assert [it.movie_id for it in got.items] == [lookup.movie_ids[p] for p in expected], user
    assert max(map(len, caller.bodies)) <= DEFAULT_REQUEST_BYTES
    assert sum(b.count(b'"keys"') for b in caller.bodies) == len(new_users + known) * DEFAULT_SHORTLIST
