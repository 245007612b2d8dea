"""Synthetic ml-100k-format data: movies chosen by taste, a long popularity tail, planted ratings."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from fmrec.data.readers import ML100K_GENRES, sorted_unique
from fmrec.errors import InputError
from fmrec.io_utils import atomic_dir

GENRES = ML100K_GENRES
# Calibrated on the default shape so the histogram matches ml-100k's (1: 6.1%, 2: 11.4%, 3: 27.1%,
# 4: 34.2%, 5: 21.2%): cut points on the planted score rather than rounding, since real ratings are skewed
# (4 is the mode, with a long tail of 1s and 2s).
_RATING_CUTS = np.array([2.1, 2.82, 3.78, 4.9])
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
)  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_T0, _T1 = 874724710, 893286638  # the span of ml-100k's timestamps
_USERS_PER_CHUNK = 8192  # fixed: part of what makes the output a function of the seed alone
# Title words: some carry latin-1 letters (u.item is latin-1, as in ml-100k: "Cité des enfants perdus, La").
_WORDS = (
    "Night", "River", "Summer", "Café", "Ghost", "Señor", "Blue", "Return", "Amélie", "City", "Über", "Lost",
    "Dragon", "Garçon", "Fire", "Winter", "Niño", "Secret", "Étoile", "Road", "King", "Mädchen", "Island",
    "Dream", "Año", "Silent", "Strange", "Lumière", "Last", "Wild", "Crème", "Storm",
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """Shape and seed of a synthetic dataset; defaults are ml-100k's shape, calibrated against ml-100k's ua
    split (docs/data.md: benchmarks/bench_synth_realism.py)."""

    users: int = 943
    items: int = 1682
    ratings: int = 100_000
    seed: int = 0
    factors: int = 8
    test_per_user: int = 10
    min_per_user: int = 20
    clusters: int = 0  # taste clusters; 0: about 0.6 sqrt(items), between 2 and 128
    taste_share: float = 0.75  # share of a user's picks made by taste; the rest by global popularity
    taste_alpha: float = (
        0.03  # Dirichlet concentration of a user's mixture over clusters (small: few clusters)
    )

    def n_clusters(self) -> int:
        auto = int(np.clip(round(0.6 * np.sqrt(self.items)), 2, 128))
        return min(self.items, self.clusters or auto)

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
        if self.clusters < 0 or not 0.0 <= self.taste_share <= 1.0 or self.taste_alpha <= 0:
            raise InputError(
                f"synth: clusters must be >= 0, taste_share within 0-1 and taste_alpha > 0, got {self}"
            )


@dataclass
class Planted:
    """The model the ratings are drawn from (kept so tests can check what is recoverable)."""

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_weight: np.ndarray  # global popularity: the probability a popularity pick lands on an item
    item_cluster: np.ndarray  # the taste cluster of each item
    user_taste: np.ndarray  # float32 (users, clusters): each user's mixture over clusters (rows sum to 1)


def _popularity(n: int, rng: np.random.Generator) -> np.ndarray:
    """Long-tailed item weights: log-normal in rank, flattened at the head, with a steeper obscure tail
    (ml-100k: max 583 ratings for one movie, median 27, 141 movies rated once)."""
    z = ndtri(1.0 - (rng.permutation(n) + 0.5) / n)
    log_w = 1.9 * np.minimum(z, 2.3) + 1.7 * np.minimum(z + 0.5, 0.0)
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def _planted(cfg: SynthConfig, rng: np.random.Generator) -> Planted:
    n_clusters = cfg.n_clusters()
    weight = _popularity(cfg.items, rng)
    # item clusters of uneven size, none empty
    sizes = rng.dirichlet(np.full(n_clusters, 2.0))
    cluster = rng.choice(n_clusters, size=cfg.items, p=sizes)
    cluster[rng.permutation(cfg.items)[:n_clusters]] = np.arange(n_clusters)
    # each user's sparse mixture over clusters (Dirichlet via normalised gammas; a row that underflows to
    # zero gets one random cluster)
    # the prior mass of a cluster follows its popularity mass, so taste picks keep the popularity tail
    mass = np.bincount(cluster, weight, n_clusters)
    taste = rng.gamma(cfg.taste_alpha * n_clusters * mass, size=(cfg.users, n_clusters))
    empty = taste.sum(axis=1) <= 0
    taste[empty, rng.integers(0, n_clusters, int(empty.sum()))] = 1.0
    taste /= taste.sum(axis=1, keepdims=True)
    # rating factors share the clusters' directions, so a user likes the movies of their own clusters
    centre = rng.standard_normal((n_clusters, cfg.factors))
    scale = 0.75 / np.sqrt(cfg.factors) ** 0.5
    item_factors = scale * (0.8 * centre[cluster] + 0.6 * rng.standard_normal((cfg.items, cfg.factors)))
    user_factors = scale * (0.8 * taste @ centre + 0.6 * rng.standard_normal((cfg.users, cfg.factors)))
    popularity = np.log(weight / weight.mean())
    # popular movies rate higher, so "most popular" is a fair baseline, as on real data
    item_bias = 0.45 * rng.standard_normal(cfg.items) + 0.3 * (popularity - popularity.mean())
    user_bias = 0.5 * rng.standard_normal(cfg.users)
    return Planted(
        mu=3.0,
        user_bias=user_bias,
        item_bias=item_bias,
        user_factors=user_factors,
        item_factors=item_factors,
        item_weight=weight,
        item_cluster=cluster,
        user_taste=taste.astype(np.float32),
    )


def _user_counts(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least min_per_user, heavy-tailed like real activity, summing to cfg.ratings."""
    # ml-100k's most active user rated 44% of the movies; small dense shapes need more room
    cap = max(cfg.min_per_user, int(cfg.items * 0.44), -(-5 * cfg.ratings // (4 * cfg.users)))
    cap = min(cap, max(cfg.min_per_user, int(cfg.items * 0.8)))
    # log-normal activity, capped at the head; the least active users keep exactly the minimum
    # (ml-100k: median 65, max 737)
    z = ndtri(1.0 - (rng.permutation(cfg.users) + 0.5) / cfg.users)
    activity = np.maximum(np.exp(np.minimum(z, 2.6)) - 0.2, 0.0)
    counts = np.full(cfg.users, cfg.min_per_user, dtype=np.int64)
    left = cfg.ratings - counts.sum()
    while left > 0:
        room = cap - counts
        p = np.where(room > 0, activity, 0.0)
        if p.sum() <= 0:  # only the least active users have room left
            p = (room > 0).astype(np.float64)
        add = np.minimum(rng.multinomial(left, p / p.sum()), room)
        counts += add
        left = cfg.ratings - counts.sum()
    return counts


def _taste_lift(cfg: SynthConfig, planted: Planted) -> np.ndarray:
    """(clusters,) factor turning a cluster's taste mass into a per-weight pick probability."""
    mass = np.bincount(planted.item_cluster, planted.item_weight, planted.user_taste.shape[1])
    return cfg.taste_share / mass


def _forced_raters(
    cfg: SynthConfig, planted: Planted, counts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One rater per movie, drawn by activity and taste, so every movie has a rating (ml-100k lists only rated
    movies); the obscure ones keep just this one, and a few of those fall in the test set."""
    rater = np.full(cfg.items, -1, dtype=np.int64)
    if cfg.ratings < 2 * cfg.items:
        return rater  # too few ratings to cover the catalogue: obscure movies may stay unrated
    lift = _taste_lift(cfg, planted)
    for c in range(lift.size):
        members = np.flatnonzero(planted.item_cluster == c)
        # heavy users dig deepest into the tail (weight activity^4): on ml-100k only 2 of the 141 movies
        # rated once land in ua.test, so their raters are the users with hundreds of ratings
        p = counts.astype(np.float64) ** 4 * ((1.0 - cfg.taste_share) + lift[c] * planted.user_taste[:, c])
        cdf = np.cumsum(p)
        rater[members] = np.minimum(np.searchsorted(cdf, rng.random(members.size) * cdf[-1]), cfg.users - 1)
    # a user given more movies than they rate hands the surplus to others (rare: tiny shapes only)
    for _ in range(100):
        load = np.bincount(rater, minlength=cfg.users)
        over = np.flatnonzero(load > counts)
        if not over.size:
            break
        for u in over:
            mine = np.flatnonzero(rater == u)
            surplus = mine[rng.permutation(mine.size)[: load[u] - counts[u]]]
            room = np.maximum(counts - load, 0).astype(np.float64)
            rater[surplus] = rng.choice(cfg.users, size=surplus.size, p=room / room.sum())
            load = np.bincount(rater, minlength=cfg.users)
    return rater


def _pick_items(
    counts: np.ndarray,
    taste: np.ndarray,
    forced: np.ndarray,
    planted: Planted,
    cfg: SynthConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """For each user of a chunk, `counts[u]` distinct items (user index local to the chunk): `forced` keys
    (local user * items + item) first, the rest from the user's mix of taste-cluster and popularity picks."""
    weight, cluster = planted.item_weight, planted.item_cluster
    n_items, n_users, n_clusters = weight.size, counts.size, taste.shape[1]
    lift = _taste_lift(cfg, planted)
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    # items grouped by cluster; cluster c's within-cluster CDF lies in (c, c + 1]
    by_cluster = np.argsort(cluster, kind="stable")
    c_sorted = cluster[by_cluster]
    w_sorted = weight[by_cluster]
    c_cdf = np.cumsum(w_sorted)
    c_start = np.searchsorted(c_sorted, np.arange(n_clusters))
    c_cdf = c_cdf - np.concatenate([[0.0], c_cdf[c_start[1:] - 1]])[c_sorted]
    c_cdf = c_cdf / np.bincount(c_sorted, w_sorted, n_clusters)[c_sorted] + c_sorted
    c_cdf[np.r_[c_start[1:] - 1, n_items - 1]] = np.arange(1, n_clusters + 1)
    # each user's cluster CDF lies in (u, u + 1]
    t_cdf = np.cumsum(taste.astype(np.float64), axis=1)
    t_cdf = (t_cdf / t_cdf[:, -1:] + np.arange(n_users)[:, None]).ravel()
    t_cdf[n_clusters - 1 :: n_clusters] = np.arange(1, n_users + 1)

    def log_prob(u: int) -> np.ndarray:
        # floored: a user who must rate more movies than their clusters hold falls back on the rest, never on
        # an item already taken (-inf)
        mix = (1.0 - cfg.taste_share) + lift[cluster] * taste[u, cluster]
        return np.log(weight) + np.log(np.maximum(mix, 1e-12))

    # heavy users (a twentieth of the catalogue or more) get exact weighted sampling without replacement
    # (Gumbel top-k); light users draw with replacement, and duplicates are redrawn for a few rounds
    heavy = counts * 20 >= n_items
    exact: list[np.ndarray] = []

    def gumbel_top(u: int, k: int, taken: np.ndarray) -> None:
        g = log_prob(u) - np.log(-np.log(rng.random(n_items)))
        g[taken] = -np.inf
        exact.append(u * n_items + np.argpartition(-g, k - 1)[:k])

    keys = np.sort(forced)
    n_forced = np.bincount(keys // n_items, minlength=n_users)
    for u in np.flatnonzero(heavy):
        lo, hi = np.searchsorted(keys, [u * n_items, (u + 1) * n_items])
        if counts[u] > n_forced[u]:
            gumbel_top(int(u), int(counts[u] - n_forced[u]), keys[lo:hi] % n_items)
    want = np.where(heavy, n_forced, counts)
    have = n_forced.copy()
    for _ in range(8):
        deficit = want - have
        if not deficit.any():
            break
        users = np.repeat(np.arange(n_users), np.ceil(deficit * 1.2).astype(np.int64) + (deficit > 0))
        by_taste = rng.random(users.size) < cfg.taste_share
        r_cluster, r_item, r_popular = (rng.random(users.size) for _ in range(3))
        t_users = users[by_taste]
        c = np.searchsorted(t_cdf, t_users + r_cluster[by_taste], side="right") - t_users * n_clusters
        c = np.clip(c, 0, n_clusters - 1)
        items = np.empty(users.size, dtype=np.int64)
        in_cluster = np.searchsorted(c_cdf, c + r_item[by_taste], side="right")
        items[by_taste] = by_cluster[np.minimum(in_cluster, n_items - 1)]
        items[~by_taste] = np.minimum(np.searchsorted(cdf, r_popular[~by_taste]), n_items - 1)
        cand = sorted_unique(users * n_items + items)
        if keys.size:  # keys stay sorted
            pos = np.minimum(np.searchsorted(keys, cand), keys.size - 1)
            cand = cand[keys[pos] != cand]
        # keep at most each user's deficit, chosen at random so no item id is favoured
        cand = cand[np.argsort(cand // n_items + rng.random(cand.size), kind="stable")]
        cu = cand // n_items
        first = np.searchsorted(cu, np.arange(n_users))
        cand = cand[np.arange(cand.size) - first[cu] < deficit[cu]]
        # two sorted runs: a stable (run-merging) sort joins them in linear time
        keys = np.sort(np.concatenate([keys, np.sort(cand)]), kind="stable")
        have += np.bincount(cand // n_items, minlength=n_users)
    if (have < want).any():
        for u in np.flatnonzero(have < want):
            lo, hi = np.searchsorted(keys, [u * n_items, (u + 1) * n_items])
            gumbel_top(int(u), int(want[u] - have[u]), keys[lo:hi] % n_items)
    keys = np.sort(np.concatenate([keys, *exact]), kind="stable")
    return keys // n_items, keys % n_items


def _model(cfg: SynthConfig) -> tuple[Planted, np.ndarray, np.ndarray, np.random.SeedSequence]:
    """The planted model, ratings per user, each movie's forced rater, and the root of the chunk seeds."""
    model_seed, counts_seed, chunk_root, _meta, forced_seed = np.random.SeedSequence(cfg.seed).spawn(5)
    planted = _planted(cfg, np.random.default_rng(model_seed))
    counts = _user_counts(cfg, np.random.default_rng(counts_seed))
    rater = _forced_raters(cfg, planted, counts, np.random.default_rng(forced_seed))
    return planted, counts, rater, chunk_root


def _chunks(
    cfg: SynthConfig, model: tuple[Planted, np.ndarray, np.ndarray, np.random.SeedSequence]
) -> Iterator[dict[str, np.ndarray]]:
    """Ratings of consecutive user chunks, sorted by (user, item), with a test flag (ua-style split)."""
    planted, counts, rater, chunk_root = model
    forced_items = np.flatnonzero(rater >= 0)
    forced_users = rater[forced_items]
    n_chunks = -(-cfg.users // _USERS_PER_CHUNK)
    for c, seq in enumerate(chunk_root.spawn(n_chunks)):
        rng = np.random.default_rng(seq)
        u0, u1 = c * _USERS_PER_CHUNK, min(cfg.users, (c + 1) * _USERS_PER_CHUNK)
        mine = (forced_users >= u0) & (forced_users < u1)
        forced = (forced_users[mine] - u0) * cfg.items + forced_items[mine]
        local, item = _pick_items(counts[u0:u1], planted.user_taste[u0:u1], forced, planted, cfg, rng)
        user = local + u0
        score = (
            planted.mu
            + planted.user_bias[user]
            + planted.item_bias[item]
            + np.einsum("ij,ij->i", planted.user_factors[user], planted.item_factors[item])
            + 0.7 * rng.standard_normal(user.size)
        )
        rating = (1 + np.searchsorted(_RATING_CUTS, score)).astype(np.int8)
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
    return _planted(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0]))


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
    words = rng.integers(0, len(_WORDS), (n, 2))
    titles = [f"{_WORDS[a]} {_WORDS[b]} {i + 1} ({years[i]})" for i, (a, b) in enumerate(words.tolist())]
    # ml-100k lists 18 titles twice under different ids (the same film entered again): about 1% of movies
    # repeat an earlier movie's title and year here
    n_dup = min(n // 2, round(n * 18 / 1682))
    order = rng.permutation(n)
    for copy, original in zip(order[:n_dup].tolist(), order[n_dup : 2 * n_dup].tolist(), strict=True):
        titles[copy], years[copy] = titles[original], years[original]
    return "".join(
        f"{i + 1}|{titles[i]}|{days[i]:02d}-{_MONTHS[months[i]]}-{years[i]}||"
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
            model = _model(cfg)
            for chunk in _chunks(cfg, model):
                lines = int_rows_matrix([chunk["user"], chunk["item"], chunk["rating"], chunk["timestamp"]])
                f_all.write(squeeze(lines))
                f_base.write(squeeze(lines[~chunk["test"]]))
                f_test.write(squeeze(lines[chunk["test"]]))
                counts["ratings"] += int(chunk["user"].size)
                counts["test"] += int(chunk["test"].sum())
                counts["positive"] += int((chunk["rating"] >= 4).sum())
        counts["train"] = counts["ratings"] - counts["test"]
        meta_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[3])
        planted = model[0]
        (tmp / "u.item").write_text(_items_text(cfg, planted, meta_rng), encoding="latin-1")
        (tmp / "u.user").write_text(_users_text(cfg, meta_rng), encoding="latin-1")
        (tmp / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)), encoding="latin-1")
        (tmp / "u.occupation").write_text("".join(f"{o}\n" for o in OCCUPATIONS), encoding="latin-1")
        (tmp / "u.info").write_text(f"{cfg.users} users\n{cfg.items} items\n{counts['ratings']} ratings\n")
        summary = {"config": dataclasses.asdict(cfg), **counts, "synthetic": True}
        (tmp / "SYNTHETIC.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
