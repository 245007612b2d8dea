"""Preprocess: a MovieLens folder -> one-hot recordIO train/test channels, lookup, holdout and manifest."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from array import array
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.wire import CONTENT_TYPE
from fmrec.data.readers import DUPLICATE_POLICY, Dataset, Ratings, load_dataset, sorted_unique, title_coverage
from fmrec.errors import InputError
from fmrec.evaluation.holdout import HeldOut, write_holdout
from fmrec.features.channels import labels_for, ranking_channels, write_channel
from fmrec.features.layout import Encoding, build_encoding, positions
from fmrec.features.manifest import Manifest, write_manifest
from fmrec.features.neighbours import fit_served
from fmrec.features.objective import check_objective
from fmrec.features.options import PreprocessConfig
from fmrec.io_utils import atomic_dir
from fmrec.ratings.merge import merge_from_data_dir
from fmrec.serving.lookup import Lookup, LookupHistory, write_lookup
from fmrec.serving.neighbour_table import ServedNeighbours

log = logging.getLogger("fmrec.preprocess")

OUTPUT_CHANNELS = ("train", "test", "lookup", "manifest", "holdout")


def _write_holdout(folder: Path, test: Ratings | None) -> dict[str, Any]:
    """The held-out ratings as ids (unknown users and movies included): ranking relevance comes from them,
    never from the test channel's labels."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = np.empty(0, dtype=np.int64)
    held = (
        HeldOut(test.user, test.movie, test.rating.astype(np.float64))
        if test is not None
        else HeldOut(empty, empty, np.empty(0))
    )
    path = write_holdout(folder, held)
    return {"name": path.name, "rows": len(held), "bytes": path.stat().st_size}


def _to_array(code: str, values: np.ndarray) -> array:
    arr = array(code)
    arr.frombytes(np.ascontiguousarray(values, dtype=np.dtype(code).newbyteorder("=")).tobytes())
    return arr


def build_lookup(enc: Encoding, ds: Dataset, cfg: PreprocessConfig) -> Lookup:
    train = ds.train
    upos, mpos = positions(enc.user_ids, train.user), positions(enc.movie_ids, train.movie)
    nm = enc.movie_ids.size
    count = np.bincount(mpos, minlength=nm)
    total = np.bincount(mpos, weights=train.rating.astype(np.float64), minlength=nm)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    pairs = sorted_unique(upos * nm + mpos)
    rated_user, rated_movie = pairs // nm, pairs % nm
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rated_user, minlength=enc.user_ids.size))))
    titles = [""] * nm
    genres: list[list[str]] = [[] for _ in range(nm)]
    if ds.movies is not None:
        pos = positions(enc.movie_ids, ds.movies.ids)
        for i in np.flatnonzero(pos >= 0).tolist():
            titles[pos[i]] = ds.movies.titles[i]
            genres[pos[i]] = ds.movies.genres[i]

    def aux_arrays(mat: sp.csr_matrix | None) -> tuple[array | None, array | None]:
        if mat is None:
            return None, None
        return _to_array("Q", mat.indptr), _to_array("I", mat.indices)

    ua_ptr, ua_cols = aux_arrays(enc.user_aux)
    ma_ptr, ma_cols = aux_arrays(enc.movie_aux)
    return Lookup(
        feature_dim=enc.feature_dim,
        user_ids=enc.user_ids.tolist(),
        movie_ids=enc.movie_ids.tolist(),
        titles=titles,
        genres=genres,
        movie_count=_to_array("I", count),
        movie_mean=_to_array("f", mean),
        rated_indptr=_to_array("Q", indptr),
        rated_pos=_to_array("I", rated_movie),
        label_mode=cfg.label,
        label_threshold=cfg.threshold if cfg.label == "binary" else None,
        user_aux_indptr=ua_ptr,
        user_aux_cols=ua_cols,
        movie_aux_indptr=ma_ptr,
        movie_aux_cols=ma_cols,
        aux_blocks=[
            {"name": b.name, "offset": b.offset, "size": b.size, "labels": b.labels, "value": enc.aux_value}
            for b in enc.blocks[2:]
        ],
        meta={"layout": ds.layout, "split": ds.split, "objective": cfg.objective},
        history=None
        if enc.history is None
        else LookupHistory(
            offset=enc.history_offset, scale=enc.history.scale, cap=enc.history.cap, fixed=enc.history.fixed
        ),
        neighbours=_neighbour_table(enc, rated_user, rated_movie, cfg),
    )


def _neighbour_table(
    enc: Encoding, rated_user: np.ndarray, rated_movie: np.ndarray, cfg: PreprocessConfig
) -> ServedNeighbours | None:
    """The lookup's neighbour table, fitted on the train ratings (each (user, movie) once), or None."""
    block = enc.columns.neighbours
    if block is None:
        return None
    n_movies = enc.movie_ids.size
    t0 = time.perf_counter()
    table = fit_served(
        rated_user,
        rated_movie,
        (enc.user_ids.size, n_movies),
        block.offset,
        keep=cfg.neighbours,
        l2=cfg.neighbour_l2,
        max_movies=cfg.neighbour_movies,
        weight=cfg.neighbour_weight,
    )
    log.info(
        "neighbour table: the %d most-rated of %d movies fitted (lambda %g), %d entries, in %.1f s",
        min(cfg.neighbour_movies, n_movies),
        n_movies,
        cfg.neighbour_l2,
        len(table.targets),
        time.perf_counter() - t0,
    )
    return table


def _balance(labels: np.ndarray, mode: str) -> dict[str, float]:
    if labels.size == 0:
        return {}
    if mode == "binary":
        return {"positive": int(labels.sum()), "positive_fraction": round(float(labels.mean()), 6)}
    return {"mean": round(float(labels.mean()), 6), "std": round(float(labels.std()), 6)}


def as_implicit(ds: Dataset, cfg: PreprocessConfig) -> Dataset:
    """Implicit feedback: every row a liked positive, so each rating becomes the label threshold (training
    labels, the sampler's positives and the evaluation's relevance all read "rating >= threshold")."""
    if cfg.objective != "ranking" or cfg.label != "binary":
        raise InputError("implicit feedback trains the ranking objective with binary labels only")

    def liked(r: Ratings) -> Ratings:
        return dataclasses.replace(r, rating=np.full(len(r), cfg.threshold, dtype=np.float32))

    return dataclasses.replace(ds, train=liked(ds.train), test=None if ds.test is None else liked(ds.test))


def user_share(ds: Dataset, cfg: PreprocessConfig) -> Dataset:
    """The ratings of this instance's users (user id % user_shards == user_shard); `ds` itself for one."""
    if cfg.user_shards == 1:
        return ds

    def share(r: Ratings) -> Ratings:
        keep = r.user % cfg.user_shards == cfg.user_shard
        return Ratings(r.user[keep], r.movie[keep], r.rating[keep], r.timestamp[keep], r.quality)

    return dataclasses.replace(ds, train=share(ds.train), test=None if ds.test is None else share(ds.test))


def preprocess(
    data_dir: str | Path, out: Path, cfg: PreprocessConfig, dataset: Dataset | None = None
) -> dict[str, Any]:
    """Read `data_dir`, write train/test/lookup/manifest into the (existing, empty) folder `out`.

    `dataset`: ratings already read (and split) from `data_dir`, used instead of reading it: the local
    tuner's validation carve (fmrec.tuning.ranking) preprocesses train minus held-out ratings this way.
    """
    t0 = time.perf_counter()
    check_objective(cfg.objective, cfg.predictor_type, cfg.label)
    sampling_config = cfg.sampling()  # range checks before any reading or writing
    ds = dataset or load_dataset(data_dir, cfg.split, cfg.holdout_per_user, cfg.seed, cfg.max_reject_fraction)
    extra = None
    if dataset is None:  # ratings posted through the API, under data_dir/extra-ratings/ (fmrec.ratings.merge)
        ds, extra = merge_from_data_dir(ds, data_dir)
    if cfg.implicit:
        ds = as_implicit(ds, cfg)
    enc = build_encoding(ds.train, ds.users, ds.movies, cfg.aux, cfg.history_config(), cfg.aux_value)
    enc.neighbours = cfg.neighbours > 0 and cfg.objective == "ranking"
    log.info(
        "read %s (%s, split %s): %d train, %d test ratings; feature_dim %d",
        data_dir,
        ds.layout,
        ds.split,
        len(ds.train),
        len(ds.test) if ds.test else 0,
        enc.feature_dim,
    )
    test = ds.test
    share = user_share(ds, cfg)
    sampling: dict[str, Any] | None = None
    if cfg.objective == "ranking":
        popularity = None
        if share is not ds:
            popularity = np.bincount(positions(enc.movie_ids, ds.train.movie), minlength=enc.movie_ids.size)
        train_files, test_files, sampling = ranking_channels(
            out, enc, share, cfg, sampling_config, popularity, None if share is ds else ds.train
        )
    else:
        train_files = write_channel(out / "train", enc, share.train, cfg, cfg.shards)
        test_files = (
            write_channel(out / "test", enc, share.test, cfg, 1)
            if share.test is not None and len(share.test)
            else []
        )
    holdout_file = _write_holdout(out / "holdout", test)
    write_lookup(out / "lookup", build_lookup(enc, ds, cfg))
    counts: dict[str, int] = {
        "train_rows": sampling["train_rows"] if sampling else len(ds.train),
        "train_ratings": len(ds.train),
        "test_rows": sum(f["rows"] for f in test_files),
        "test_ratings": len(test) if test else 0,
        "users": int(enc.user_ids.size),
        "movies": int(enc.movie_ids.size),
    }
    unknown: dict[str, int] = {}
    if test is not None:
        u_unk = positions(enc.user_ids, test.user) < 0
        m_unk = positions(enc.movie_ids, test.movie) < 0
        unknown = {
            "test_rows_unknown_user": int(u_unk.sum()),
            "test_rows_unknown_movie": int(m_unk.sum()),
            "test_rows_unknown_both": int((u_unk & m_unk).sum()),
        }
        pairs_train = sorted_unique(ds.train.user * (1 << 32) + ds.train.movie)
        pairs_test = test.user * (1 << 32) + test.movie
        unknown["test_pairs_also_in_train"] = int((positions(pairs_train, pairs_test) >= 0).sum())
    counts.update(unknown)
    manifest = Manifest(
        feature_dim=enc.feature_dim,
        layout=[{"name": b.name, "offset": b.offset, "size": b.size} for b in enc.blocks]
        + (
            []
            if enc.history is None
            else [{"name": "history", "offset": enc.history_offset, "size": int(enc.movie_ids.size)}]
        ),
        label={"mode": cfg.label, "threshold": cfg.threshold if cfg.label == "binary" else None},
        objective=cfg.objective,
        sampling=None
        if sampling is None
        else {
            "negatives_per_positive": cfg.negatives_per_positive,
            "negative_exponent": cfg.negative_exponent,
            "positives": cfg.positives,
            "below_threshold_negatives": cfg.below_threshold_negatives,
            "passes": cfg.passes,
            "seed": cfg.seed,
            "train": sampling["train"],
            "test": sampling["test"],
            "history": sampling["history"],
        },
        counts=counts,
        label_balance={
            "train": _balance(labels_for(ds.train.rating, cfg), cfg.label),
            "test": _balance(labels_for(test.rating, cfg), cfg.label) if test is not None else {},
        }
        if sampling is None
        else {"train": sampling["train_balance"], "test": sampling.get("test_balance", {})},
        files={"train": train_files, "test": test_files, "holdout": [holdout_file]},
        content_type=CONTENT_TYPE,
        source={"data_dir": str(data_dir), "layout": ds.layout, "split": ds.split},
        config={**asdict(cfg), "aux": list(cfg.aux)},
    )
    files = [ds.train.quality] + (
        [test.quality] if test is not None and test.quality is not ds.train.quality else []
    )
    quality = {
        "files": [q.as_dict() for q in files],
        "rows_read": sum(q.rows_read for q in files),
        "rows_rejected": sum(q.rows_rejected for q in files),
        "duplicate_policy": DUPLICATE_POLICY,
        "unknown_in_test": unknown,
        "titles": (t := title_coverage(ds, enc.movie_ids)),
        "extra_ratings": extra,
    }
    if t["movies_without_title"]:
        log.warning(
            "%d of %d rated movies have no title (%s); the API will show them with an empty title",
            t["movies_without_title"],
            t["movies"],
            f"not in {t['source']}, e.g. movie ids {t['examples'][:5]}" if t["source"] else "no movie file",
        )
    # user shards share one S3 prefix: shard 0 writes manifest.json (the layout is the same on every shard),
    # every other shard its own counts beside it
    write_manifest(
        out, manifest, "manifest.json" if cfg.user_shard == 0 else f"shard-{cfg.user_shard:03d}.json"
    )
    # allow_nan=False: a NaN or inf in them is a bug to stop on, never a bare NaN that strict parsers refuse
    (out / "manifest" / "data_quality.json").write_text(json.dumps(quality, indent=2, allow_nan=False) + "\n")
    log.info("preprocess done in %.1f s", time.perf_counter() - t0)
    return manifest.as_dict()


def run(
    data_dir: str | Path, out_dir: str | Path, cfg: PreprocessConfig, overwrite: bool = False
) -> dict[str, Any]:
    """`fmrec preprocess`: the whole output folder appears at once (built in a temporary sibling)."""
    with atomic_dir(out_dir, replace=overwrite) as tmp:
        return preprocess(data_dir, tmp, cfg)
