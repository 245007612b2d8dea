"""Synthetic MovieLens-100k-format data from a planted latent-factor model with popularity skew."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.data.readers import ML100K_GENRES, sorted_unique
from fmrec.errors import InputError
from fmrec.io_utils import atomic_dir

GENRES = ML100K_GENRES
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
)  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_T0, _T1 = 874724710, 893286638  # the span of ml-100k's timestamps
_USERS_PER_CHUNK = 8192  # fixed: part of what makes the output a function of the seed alone


@dataclass(frozen=True)
class SynthConfig:
    """Shape and seed of a synthetic dataset; defaults are ml-100k's shape."""

    users: int = 943
    items: int = 1682
    ratings: int = 100_000
    seed: int = 0
    factors: int = 8
    test_per_user: int = 10
    min_per_user: int = 20

    def validate(self) -> None:
        if self.users < 1 or self.items < 1 or self.ratings < 1:
            raise InputError(f"synth: users, items and ratings must be positive, got {self}")
        if self.ratings < self.users * self.min_per_user:
            raise InputError(
                f"synth: {self.ratings} ratings cannot give each of {self.users} users at least "
                f"{self.min_per_user} (GroupLens keeps only such users); use --ratings >= "
                f"{self.users * self.min_per_user} or fewer --users"
            )
        if self.min_per_user > self.items or self.ratings > self.users * self.items * 0.8:
            raise InputError(
                f"synth: {self.ratings} ratings over {self.users} users x {self.items} items is too dense "
                f"(at most 80% of all pairs, and --items >= {self.min_per_user})"
            )
        if self.test_per_user >= self.min_per_user:
            raise InputError("synth: test_per_user must be below min_per_user")


@dataclass
class Planted:
    """The model the ratings are drawn from (kept so tests can check what is recoverable)."""

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_weight: np.ndarray  # popularity: the probability an item is picked


def _planted(cfg: SynthConfig, rng: np.random.Generator) -> Planted:
    ranks = rng.permutation(cfg.items)
    weight = 1.0 / (ranks + 10.0) ** 1.1  # Zipf-like popularity, flattened at the head
    weight /= weight.sum()
    popularity = np.log(weight / weight.mean())
    item_bias = 0.45 * rng.standard_normal(cfg.items) + 0.12 * (popularity - popularity.mean())
    user_bias = 0.35 * rng.standard_normal(cfg.users)
    scale = 0.8 / np.sqrt(cfg.factors) ** 0.5
    return Planted(
        mu=3.55,
        user_bias=user_bias,
        item_bias=item_bias,
        user_factors=scale * rng.standard_normal((cfg.users, cfg.factors)),
        item_factors=scale * rng.standard_normal((cfg.items, cfg.factors)),
        item_weight=weight,
    )


def _user_counts(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least min_per_user, heavy-tailed like real activity, summing to cfg.ratings."""
    cap = max(cfg.min_per_user, int(cfg.items * 0.8))
    activity = rng.pareto(1.3, cfg.users) + 0.05
    counts = np.full(cfg.users, cfg.min_per_user, dtype=np.int64)
    left = cfg.ratings - counts.sum()
    while left > 0:
        room = cap - counts
        p = np.where(room > 0, activity, 0.0)
        add = np.minimum(rng.multinomial(left, p / p.sum()), room)
        counts += add
        left = cfg.ratings - counts.sum()
    return counts


def _pick_items(
    counts: np.ndarray, weight: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each user, `counts[u]` distinct items drawn by popularity (user index local to the chunk)."""
    n_items = weight.size
    log_w = np.log(weight)
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    # heavy users (a twentieth of the catalogue or more) get exact weighted sampling without replacement
    # (Gumbel top-k); light users draw with replacement, and duplicates are redrawn for a few rounds
    heavy = counts * 20 >= n_items
    exact: list[np.ndarray] = []

    def gumbel_top(u: int, k: int, taken: np.ndarray | None = None) -> None:
        g = log_w - np.log(-np.log(rng.random(n_items)))
        if taken is not None:
            g[taken] = -np.inf
        exact.append(u * n_items + np.argpartition(-g, k - 1)[:k])

    for u in np.flatnonzero(heavy):
        gumbel_top(int(u), int(counts[u]))
    want = np.where(heavy, 0, counts)
    have = np.zeros(counts.size, dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(8):
        deficit = want - have
        if not deficit.any():
            break
        users = np.repeat(np.arange(counts.size), np.ceil(deficit * 1.2).astype(np.int64) + (deficit > 0))
        items = np.minimum(np.searchsorted(cdf, rng.random(users.size)), n_items - 1)
        cand = sorted_unique(users * n_items + items)
        if keys.size:
            keys = np.sort(keys)
            pos = np.minimum(np.searchsorted(keys, cand), keys.size - 1)
            cand = cand[keys[pos] != cand]
        # keep at most each user's deficit, chosen at random so no item id is favoured
        cand = cand[np.argsort(cand // n_items + rng.random(cand.size), kind="stable")]
        cu = cand // n_items
        first = np.searchsorted(cu, np.arange(counts.size))
        cand = cand[np.arange(cand.size) - first[cu] < deficit[cu]]
        keys = np.concatenate([keys, cand])
        have += np.bincount(cand // n_items, minlength=counts.size)
    if (have < want).any():
        keys = np.sort(keys)
        for u in np.flatnonzero(have < want):
            lo, hi = np.searchsorted(keys, [u * n_items, (u + 1) * n_items])
            gumbel_top(int(u), int(want[u] - have[u]), keys[lo:hi] % n_items)
    keys = np.sort(np.concatenate([keys, *exact]))
    return keys // n_items, keys % n_items


def _chunks(cfg: SynthConfig) -> Iterator[dict[str, np.ndarray]]:
    """Ratings of consecutive user chunks, sorted by (user, item), with a test flag (ua-style split)."""
    root = np.random.SeedSequence(cfg.seed)
    model_seed, counts_seed, chunk_root = root.spawn(3)
    planted = _planted(cfg, np.random.default_rng(model_seed))
    counts = _user_counts(cfg, np.random.default_rng(counts_seed))
    n_chunks = -(-cfg.users // _USERS_PER_CHUNK)
    for c, seq in enumerate(chunk_root.spawn(n_chunks)):
        rng = np.random.default_rng(seq)
        u0, u1 = c * _USERS_PER_CHUNK, min(cfg.users, (c + 1) * _USERS_PER_CHUNK)
        local, item = _pick_items(counts[u0:u1], planted.item_weight, rng)
        user = local + u0
        score = (
            planted.mu
            + planted.user_bias[user]
            + planted.item_bias[item]
            + np.einsum("ij,ij->i", planted.user_factors[user], planted.item_factors[item])
            + 0.55 * rng.standard_normal(user.size)
        )
        rating = np.clip(np.rint(score), 1, 5).astype(np.int8)
        start = rng.integers(_T0, _T1 - 86400, u1 - u0)
        span = np.minimum(_T1 - start, (rng.exponential(0.15, u1 - u0) * (_T1 - _T0)).astype(np.int64) + 3600)
        ts = start[local] + (rng.random(user.size) * span[local]).astype(np.int64)
        # ua split: `test_per_user` random ratings of every user go to the test set
        within = np.argsort(local + rng.random(user.size))  # users stay grouped, random order inside
        first = np.searchsorted(local[within], np.arange(u1 - u0))
        rank = np.empty(user.size, dtype=np.int64)
        rank[within] = np.arange(user.size) - first[local[within]]
        yield {
            "user": user + 1,
            "item": item + 1,
            "rating": rating,
            "timestamp": ts,
            "test": rank < cfg.test_per_user,
        }


def planted_model(cfg: SynthConfig) -> Planted:
    """The planted model for `cfg` (the same one `write_synth` draws from)."""
    return _planted(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[0]))


def int_rows_matrix(cols: list[np.ndarray], sep: str = "\t") -> np.ndarray:
    """Non-negative integer columns as a byte matrix, one text line per row ("1\t2\t5\t881250949\n") with
    zero bytes as left padding of each number; `squeeze` turns selected rows into the file's bytes."""
    n = cols[0].size
    widths = [max(1, len(str(int(np.max(c))))) if n else 1 for c in cols]
    mat = np.zeros((n, sum(widths) + len(cols)), dtype=np.uint8)
    pos = 0
    for j, (col, width) in enumerate(zip(cols, widths, strict=True)):
        rest = np.asarray(col).astype(np.uint64)
        for k in range(width - 1, -1, -1):
            digit = (rest % np.uint64(10)).astype(np.uint8) + np.uint8(48)
            if k < width - 1:
                digit *= rest > 0  # leading zeros become padding
            mat[:, pos + k] = digit
            rest //= np.uint64(10)
        pos += width
        mat[:, pos] = ord(sep) if j < len(cols) - 1 else 10
        pos += 1
    return mat


def squeeze(mat: np.ndarray) -> bytes:
    flat = mat.ravel()
    return flat[flat != 0].tobytes()


def format_int_rows(cols: list[np.ndarray], sep: str = "\t") -> bytes:
    """Non-negative integer columns as text lines, built without a Python loop."""
    return squeeze(int_rows_matrix(cols, sep))


def _items_text(cfg: SynthConfig, planted: Planted, rng: np.random.Generator) -> str:
    n, n_genres = cfg.items, len(GENRES)
    years = np.clip(1995 - rng.exponential(6.0, n), 1922, 1998).astype(int)
    days, months = rng.integers(1, 29, n), rng.integers(0, 12, n)
    # genres follow the planted item factors, so genre features carry real signal
    f = planted.item_factors
    g = np.arange(1, n_genres)
    sign = np.where(g < 10, 1.0, -1.0)
    flags = np.zeros((n, n_genres), dtype=np.int64)
    flags[:, 1:] = f[:, g % f.shape[1]] * sign > 0.35 + 0.1 * g / n_genres
    none = np.flatnonzero(flags.sum(axis=1) == 0)
    flags[none, 1 + rng.integers(0, n_genres - 1, none.size)] = 1
    flag_text = ["|".join(map(str, row)) for row in flags.tolist()]
    return "".join(
        f"{i + 1}|Synthetic Movie {i + 1} ({years[i]})|{days[i]:02d}-{_MONTHS[months[i]]}-{years[i]}||"
        f"http://example.invalid/synthetic-movie-{i + 1}|{flag_text[i]}\n"
        for i in range(n)
    )


def _users_text(cfg: SynthConfig, rng: np.random.Generator) -> str:
    ages = np.clip(rng.normal(33, 12, cfg.users), 7, 73).astype(int)
    genders = np.where(rng.random(cfg.users) < 0.71, "M", "F")
    occ = rng.choice(len(OCCUPATIONS), size=cfg.users)
    zips = rng.integers(1000, 99999, cfg.users)
    return "".join(
        f"{u + 1}|{ages[u]}|{genders[u]}|{OCCUPATIONS[occ[u]]}|{zips[u]:05d}\n" for u in range(cfg.users)
    )


def write_synth(out: str | Path, cfg: SynthConfig | None = None, *, replace: bool = False) -> dict[str, Any]:
    """Write u.data, ua.base, ua.test, u.item, u.user, u.genre, u.occupation and u.info (ml-100k format) into
    `out` atomically, streaming user chunks so memory stays bounded; returns a summary."""
    cfg = cfg or SynthConfig()
    cfg.validate()
    counts = {"ratings": 0, "train": 0, "test": 0, "positive": 0}
    with atomic_dir(out, replace=replace) as tmp:
        with (
            open(tmp / "u.data", "wb") as f_all,
            open(tmp / "ua.base", "wb") as f_base,
            open(tmp / "ua.test", "wb") as f_test,
        ):
            for chunk in _chunks(cfg):
                lines = int_rows_matrix([chunk["user"], chunk["item"], chunk["rating"], chunk["timestamp"]])
                f_all.write(squeeze(lines))
                f_base.write(squeeze(lines[~chunk["test"]]))
                f_test.write(squeeze(lines[chunk["test"]]))
                counts["ratings"] += int(chunk["user"].size)
                counts["test"] += int(chunk["test"].sum())
                counts["positive"] += int((chunk["rating"] >= 4).sum())
        counts["train"] = counts["ratings"] - counts["test"]
        meta_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[3])
        planted = planted_model(cfg)
        (tmp / "u.item").write_text(_items_text(cfg, planted, meta_rng), encoding="latin-1")
        (tmp / "u.user").write_text(_users_text(cfg, meta_rng), encoding="latin-1")
        (tmp / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)), encoding="latin-1")
        (tmp / "u.occupation").write_text("".join(f"{o}\n" for o in OCCUPATIONS), encoding="latin-1")
        (tmp / "u.info").write_text(f"{cfg.users} users\n{cfg.items} items\n{counts['ratings']} ratings\n")
        summary = {"config": dataclasses.asdict(cfg), **counts, "synthetic": True}
        (tmp / "SYNTHETIC.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
