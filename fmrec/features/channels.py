"""The train and test channels: encoded rows (rating objective) or sampled ranking rows, as recordIO files."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.writer import write_spmatrix
from fmrec.data.readers import Dataset, Ratings, sorted_unique
from fmrec.features import history as history_rules
from fmrec.features.history import bounded_cap, training_rows
from fmrec.features.layout import Encoding, encode_rows, positions
from fmrec.features.objective import SamplingConfig
from fmrec.features.options import PreprocessConfig
from fmrec.features.sampling import SampledRows, rows_per_user, sample_rows
from fmrec.machine import usable_cores

WRITE_ROWS = 1 << 20
log = logging.getLogger("fmrec.preprocess")


def labels_for(rating: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    if cfg.label == "binary":
        return (rating >= cfg.threshold).astype(np.float32)
    return rating.astype(np.float32)


# --------------------------------------------------------------------------------------------- outputs


def write_channel(
    folder: Path, enc: Encoding, r: Ratings, cfg: PreprocessConfig, shards: int
) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(r)
    bounds = np.linspace(0, n, shards + 1).round().astype(np.int64)
    files = []
    for s in range(shards):
        path = folder / cfg.part_name(s)
        written = 0
        with open(path, "wb") as fh:
            for a in range(int(bounds[s]), int(bounds[s + 1]), WRITE_ROWS):
                b = min(int(bounds[s + 1]), a + WRITE_ROWS)
                rows = encode_rows(enc, r.user[a:b], r.movie[a:b])
                written += write_spmatrix(fh, rows, labels_for(r.rating[a:b], cfg))
        files.append({"name": path.name, "rows": int(bounds[s + 1] - bounds[s]), "bytes": written})
    return files


@dataclass(frozen=True)
class RatedHistory:
    """Each user's train-rated movie positions (CSR over the channel's user positions), the history source."""

    indptr: np.ndarray
    rated: np.ndarray

    @classmethod
    def of(cls, n_users: int, user_pos: np.ndarray, movie_pos: np.ndarray, n_movies: int) -> RatedHistory:
        keys = sorted_unique(user_pos.astype(np.int64) * n_movies + movie_pos)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_movies, minlength=n_users), out=indptr[1:])
        return cls(indptr, (keys % n_movies).astype(np.int64))


def write_sampled(
    folder: Path,
    enc: Encoding,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    rows: SampledRows,
    shards: int,
    history: RatedHistory | None = None,
    rng: np.random.Generator | None = None,
    name: Any = "part-{:05d}.pbr".format,
) -> list[dict[str, Any]]:
    """Ranking rows (positions into user_ids / movie_ids, in rows' order) as recordIO files: one-hot columns,
    plus the user's rated-movie history columns when the encoding has that block.

    When user_ids / movie_ids are the encoding's own, the positions are its columns and are used directly.
    """
    direct = user_ids is enc.user_ids and movie_ids is enc.movie_ids
    folder.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    bounds = np.linspace(0, n, shards + 1).round().astype(np.int64)
    cfg = enc.history
    # a history row holds up to cap + 2 entries: fewer rows per chunk keep a chunk's arrays bounded
    step = WRITE_ROWS if cfg is None else max(1024, WRITE_ROWS // (cfg.cap + 2) * 4)
    files = []
    # One thread encodes and writes chunk k while this one builds chunk k + 1 (numpy releases the GIL in its
    # large array passes): with the three sampling passes' channel, Preprocess was a quarter of the demo. The
    # file gets the chunks in order, one at a time, so the bytes are those of a single thread.
    with ThreadPoolExecutor(max_workers=1) if usable_cores() > 1 else _Inline() as writer:
        for s in range(shards):
            path = folder / name(s)
            written = 0
            with open(path, "wb") as fh:
                pending: Any = None
                for a in range(int(bounds[s]), int(bounds[s + 1]), step):
                    b = min(int(bounds[s + 1]), a + step)
                    upos, mpos, labels = rows.take(a, b)
                    known = (upos, mpos) if direct else None
                    X = encode_rows(enc, user_ids[upos], movie_ids[mpos], known)
                    if cfg is not None and history is not None and rng is not None:
                        r, c, v = training_rows(history.indptr, history.rated, upos, mpos, cfg, rng)
                        H = sp.csr_matrix((v, (r, enc.history_offset + c)), shape=X.shape, dtype=np.float32)
                        H.sum_duplicates()  # capped histories draw with replacement: a repeat adds its value
                        X = (X + H).tocsr()
                        X.sort_indices()
                    written += pending.result() if pending is not None else 0
                    pending = writer.submit(write_spmatrix, fh, X, labels)
                written += pending.result() if pending is not None else 0
            files.append({"name": path.name, "rows": int(bounds[s + 1] - bounds[s]), "bytes": written})
    return files


class _Inline:
    """ThreadPoolExecutor's submit, run in the caller's thread (one core: nothing to overlap)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done


def ranking_channels(
    out: Path,
    enc: Encoding,
    ds: Dataset,
    cfg: PreprocessConfig,
    sampling: SamplingConfig,
    popularity: np.ndarray | None = None,
    whole_train: Ratings | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Train and test channels of the ranking objective; returns their files and the sampling record.

    `sampling`: the run's row sampling (`cfg.sampling()`, built once by the stage driver).
    `popularity`, `whole_train`: the whole data's train counts per movie position and train ratings when `ds`
    is one user shard of it (the negatives follow the whole data's popularity, and the history bound is the
    whole run's, so every instance computes the same cap); by default counted from ds.train."""
    train, test = ds.train, ds.test
    nm = enc.movie_ids.size
    # int32 positions: at 25M ratings every int64 copy costs 190 MB of the 4 GiB budget
    train_m = positions(enc.movie_ids, train.movie).astype(np.int32)
    if popularity is None:
        popularity = np.bincount(train_m, minlength=nm)
    train_u = positions(enc.user_ids, train.user)
    bound: dict[str, int] = {}
    if enc.history is not None:  # before sampling and before any file is written
        n_users = enc.user_ids.size
        # the run's channel is bounded, not each shard's: from the whole data's per-user counts, so that every
        # instance gets the same cap (a fixed history must be the same set in every shard and at serving)
        src, src_u = (
            (train, train_u)
            if whole_train is None
            else (whole_train, positions(enc.user_ids, whole_train.user))
        )
        per_user = rows_per_user(src_u, src.rating, n_users, cfg.threshold, sampling)
        budget = history_rules.MAX_ENTRIES
        lengths = np.bincount(src_u, minlength=n_users)
        del src_u
        cap, entries = bounded_cap(per_user, lengths, enc.history, budget)
        bound = {"requested": enc.history.cap, "cap": cap, "train_entries": entries, "budget": budget}
        if cap < enc.history.cap:
            # a fixed history of `cap` movies per user, not `cap` fresh draws per row: so few draws worth
            # sqrt(n)/cap each left the model near popularity's NDCG (docs/tuning.md, "Issue 22: fresh
            # negatives and fixed histories")
            cap = min(cap, history_rules.SERVED_CAP)
            log.warning(
                "history: %d columns per row would pass the run's %s-entry channel limit; "
                "each user's history is a fixed %d of their rated movies (evenly spaced), in every row and "
                "at serving",
                enc.history.cap,
                f"{budget:,}",
                cap,
            )
            enc.history = replace(enc.history, cap=cap, fixed=True)
            bound["cap"], bound["fixed"] = cap, True
    rows = sample_rows(
        train_u.astype(np.int32),
        train_m,
        train.rating,
        n_users=enc.user_ids.size,
        popularity=popularity,
        threshold=cfg.threshold,
        config=sampling,
        stream=0,
    )
    history = RatedHistory.of(enc.user_ids.size, train_u, train_m, nm) if enc.history is not None else None
    rng = np.random.default_rng([cfg.seed, 7])  # the history draws' own stream
    train_files = write_sampled(
        out / "train", enc, enc.user_ids, enc.movie_ids, rows, cfg.shards, history, rng, cfg.part_name
    )
    record: dict[str, Any] = {"train": rows.counts, "test": {}, "history": bound}
    train_positive, train_rows = rows.n_positive, len(rows)
    del rows
    test_files: list[dict[str, Any]] = []
    if test is not None and len(test):
        # Users index the union of train and test users; test movies unknown to train go after the catalogue
        # with popularity 0 (never sampled). Their rows encode as handle_unknown='ignore' does.
        users = sorted_unique(np.concatenate((enc.user_ids, test.user)))
        extra = np.setdiff1d(sorted_unique(test.movie), enc.movie_ids, assume_unique=True)
        movie_ids = np.concatenate((enc.movie_ids, extra))
        known = positions(enc.movie_ids, test.movie)
        test_m = np.where(known >= 0, known, nm + positions(extra, test.movie))
        rows = sample_rows(
            positions(users, test.user),
            test_m,
            test.rating,
            n_users=users.size,
            popularity=np.concatenate((popularity, np.zeros(extra.size, dtype=popularity.dtype))),
            threshold=cfg.threshold,
            config=replace(sampling, passes=1),  # the test channel measures; one pass is its sample
            also_rated=(positions(users, train.user).astype(np.int32), train_m),
            shuffle=False,
            stream=1,
        )
        test_history = (
            RatedHistory.of(users.size, positions(users, train.user), train_m, nm)
            if enc.history is not None
            else None
        )
        test_files = write_sampled(
            out / "test", enc, users, movie_ids, rows, 1, test_history, rng, cfg.part_name
        )
        record["test"] = rows.counts
        record["test_balance"] = _ranking_balance(rows.n_positive, len(rows))
    record["train_balance"] = _ranking_balance(train_positive, train_rows)
    record["train_rows"] = train_rows
    return train_files, test_files, record


def _ranking_balance(positive: int, rows: int) -> dict[str, float]:
    return {"positive": positive, "positive_fraction": round(positive / rows, 6)} if rows else {}
