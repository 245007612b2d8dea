"""Synthetic MovieLens-like data: movies picked by taste and franchise, long tails, planted ratings."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from fmrec.data import synth_latest
from fmrec.data.readers import ML100K_GENRES, sorted_unique
from fmrec.data.synth_presets import LAYOUTS, LIMITS, PRESETS, check_disk, check_memory, n_clusters
from fmrec.errors import InputError
from fmrec.io_utils import atomic_dir

GENRES = ML100K_GENRES
# Calibrated on the default shape so the histogram matches ml-100k's (1: 6.1%, 2: 11.4%, 3: 27.1%,
# 4: 34.2%, 5: 21.2%): cut points on the planted score rather than rounding, since real ratings are skewed
# (4 is the mode, with a long tail of 1s and 2s). The 3/4 cut decides relevance (rating >= 4): changing it
# changes every ranking figure in docs/data.md and docs/benchmarks.md.
# The 2/3 and 3/4 cuts are the default shape's score quantiles (seeds 0-2) at those cumulative shares; the
# 1/2 and 4/5 cuts are moved so that seed 0 (tests/data) stays within 2 points of each share.
_RATING_CUTS = np.array([1.75, 2.65, 3.83, 5.3])
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
    # share of a user's picks made by taste; the rest by global popularity. With 0.75, a mixture
    # concentration of 0.03 and a rating noise of 0.7 the default fmrec model beat EASE on this shape, while
    # on real ml-100k it loses by 4% (docs/data.md, "The gap to a factorization model")
    taste_share: float = 0.9
    taste_alpha: float = 0.1  # Dirichlet concentration of a user's cluster mixture (small: few clusters)
    # Item-item structure a low-rank model misses (sequels, franchises, "people who saw X saw Y"): items
    # in small franchises inside a cluster; a share of a user's picks are replaced by a sibling of another
    # of their picks, and a fan of a franchise (a per-user, per-franchise draw) rates its movies higher.
    franchise_items: float = 0.6  # share of the movies that belong to a franchise of 2 or more
    franchise_size: float = 3.0  # mean franchise size (1 + Poisson(size - 1), at least 2)
    follow_share: float = 0.35  # share of a user's picks that follow a franchise sibling of another pick
    fan_effect: float = 0.6  # rating-score shift per unit of a user's affinity to a franchise
    factor_scale: float = 0.9  # weight of taste (the planted factors) in the rating score
    rating_noise: float = 1.0  # spread of the planted score's noise (larger: a rating says less about taste)
    popularity_sigma: float = 2.0  # log-normal spread of movie popularity (in rank)
    popularity_head: float = 2.45  # z above which the head is flat (larger: a few blockbusters stand out)
    popularity_tail: float = 1.7  # extra log-normal spread below the median (larger: more movies rated once)
    activity_sigma: float = 1.0  # log-normal spread of user activity
    activity_head: float = 2.6  # z above which user activity is flat (larger: a few users rate thousands)
    layout: str = "ml-100k"  # or "ml-latest": ratings.csv in half stars, movies.csv, sparse movie ids
    unrated_items: int = 0  # ml-latest: movies listed in movies.csv that nobody rated

    def n_clusters(self) -> int:
        return n_clusters(self.items, self.clusters)

    def validate(self) -> None:
        """Refuse a shape or setting out of range, naming the allowed range (before anything is allocated)."""
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(f"synth: {name} {value!r}: expected a number in [{_num(lo)}, {_num(hi)}]")
        if self.layout not in LAYOUTS:
            raise InputError(f"synth: layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}")
        if self.unrated_items and self.layout != "ml-latest":
            raise InputError(
                "synth: unrated_items needs the ml-latest layout (u.item lists rated movies only)"
            )
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


def preset(name: str, **overrides: Any) -> SynthConfig:
    """The config of a named preset, with `overrides` (None values ignored); an unknown name is refused."""
    if name not in PRESETS:
        raise InputError(f"synth: preset {name!r}: expected one of {', '.join(PRESETS)}")
    return SynthConfig(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


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
    item_franchise: np.ndarray  # each item's franchise, -1 for a stand-alone movie
    franchise_salt: int = 0  # seeds the per-(user, franchise) affinity hash


def _popularity(n: int, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Long-tailed item weights: log-normal in rank, flattened at the head, with a steeper obscure tail
    (ml-100k: max 583 ratings for one movie, median 27, 141 movies rated once)."""
    z = ndtri(1.0 - (rng.permutation(n) + 0.5) / n)
    log_w = cfg.popularity_sigma * np.minimum(z, cfg.popularity_head)
    log_w += cfg.popularity_tail * np.minimum(z + 0.5, 0.0)
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def _planted(cfg: SynthConfig, rng: np.random.Generator) -> Planted:
    n_clusters = cfg.n_clusters()
    weight = _popularity(cfg.items, rng, cfg)
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
    scale = cfg.factor_scale / np.sqrt(cfg.factors) ** 0.5
    item_factors = scale * (0.8 * centre[cluster] + 0.6 * rng.standard_normal((cfg.items, cfg.factors)))
    user_factors = scale * (0.8 * taste @ centre + 0.6 * rng.standard_normal((cfg.users, cfg.factors)))
    popularity = np.log(weight / weight.mean())
    # popular movies rate higher, so "most popular" is a fair baseline, as on real data
    item_bias = 0.45 * rng.standard_normal(cfg.items) + 0.3 * (popularity - popularity.mean())
    user_bias = 0.5 * rng.standard_normal(cfg.users)
    franchise = _franchises(cfg, cluster, rng)
    return Planted(
        mu=3.0,
        user_bias=user_bias,
        item_bias=item_bias,
        user_factors=user_factors,
        item_factors=item_factors,
        item_weight=weight,
        item_cluster=cluster,
        user_taste=taste.astype(np.float32),
        item_franchise=franchise,
        franchise_salt=int(rng.integers(1, 2**62)),
    )


def _franchises(cfg: SynthConfig, cluster: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each item's franchise (-1: none): runs of 2+ items of one taste cluster, in random order, so a
    franchise's movies share a genre profile but have unrelated popularity."""
    n = cluster.size
    member = rng.random(n) < cfg.franchise_items
    if cfg.franchise_items <= 0 or member.sum() < 2:
        return np.full(n, -1, dtype=np.int64)
    order = np.flatnonzero(member)
    order = order[np.lexsort((rng.random(order.size), cluster[order]))]
    sizes = 2 + rng.poisson(max(cfg.franchise_size - 2.0, 0.0), order.size // 2 + 1)
    ends = np.cumsum(sizes)
    group = np.searchsorted(ends, np.arange(order.size), side="right")
    # a franchise never spans two clusters: a cluster change starts a new one
    new = np.r_[True, (np.diff(group) != 0) | (np.diff(cluster[order]) != 0)]
    group = np.cumsum(new) - 1
    size = np.bincount(group)
    out = np.full(n, -1, dtype=np.int64)
    keep = size[group] >= 2
    out[order[keep]] = np.unique(group[keep], return_inverse=True)[1]
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a uint64 hash, so a per-(user, franchise) draw needs no table."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def franchise_affinity(planted: Planted, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """A standard normal draw per (user, franchise of the item), 0 for stand-alone movies: the same for every
    movie of a franchise, independent across users and franchises (a rank the planted factors do not have)."""
    f = planted.item_franchise[item]
    key = (user.astype(np.uint64) << np.uint64(32)) ^ f.astype(np.uint64) ^ np.uint64(planted.franchise_salt)
    u = (_mix64(key) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.where(f >= 0, ndtri(np.clip(u, 1e-12, 1 - 1e-12)), 0.0)


def _user_counts(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least min_per_user, heavy-tailed like real activity, summing to cfg.ratings."""
    # ml-100k's most active user rated 44% of the movies; small dense shapes need more room
    cap = max(cfg.min_per_user, int(cfg.items * 0.44), -(-5 * cfg.ratings // (4 * cfg.users)))
    cap = min(cap, max(cfg.min_per_user, int(cfg.items * 0.8)))
    # log-normal activity, capped at the head; the least active users keep exactly the minimum
    # (ml-100k: median 65, max 737)
    z = ndtri(1.0 - (rng.permutation(cfg.users) + 0.5) / cfg.users)
    activity = np.maximum(np.exp(cfg.activity_sigma * np.minimum(z, cfg.activity_head)) - 0.2, 0.0)
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
    user_offset: int = 0,
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
    keys = _follow_ups(keys, np.sort(forced), planted, cfg, rng, user_offset)
    return keys // n_items, keys % n_items


def _follow_ups(
    keys: np.ndarray,
    forced: np.ndarray,
    planted: Planted,
    cfg: SynthConfig,
    rng: np.random.Generator,
    user_offset: int,
) -> np.ndarray:
    """Replace a `follow_share` of the picks (never a forced one) by a movie of the franchise of another of
    the user's picks, when the user is a fan of it: co-watching that item-item models see. Counts stay exact
    (a replacement that is already picked keeps the original)."""
    franchise, n_items = planted.item_franchise, planted.item_weight.size
    n_franchises = int(franchise.max(initial=-1)) + 1
    if cfg.follow_share <= 0 or n_franchises == 0 or keys.size == 0:
        return keys
    users = keys // n_items
    first = np.searchsorted(users, users, side="left")
    count = np.searchsorted(users, users, side="right") - first
    slot = np.flatnonzero(rng.random(keys.size) < cfg.follow_share)
    if forced.size:
        pos = np.minimum(np.searchsorted(forced, keys[slot]), forced.size - 1)
        slot = slot[forced[pos] != keys[slot]]
    src_item = keys[first[slot] + (rng.random(slot.size) * count[slot]).astype(np.int64)] % n_items
    f = franchise[src_item]
    fan = franchise_affinity(planted, users[slot] + user_offset, src_item) > -0.5
    slot, f = slot[(f >= 0) & fan], f[(f >= 0) & fan]
    members = np.flatnonzero(franchise >= 0)
    members = members[np.argsort(franchise[members], kind="stable")]
    # a sibling by popularity (the franchise's hit is the one most people follow up with); each franchise's
    # CDF lies in (f, f + 1]
    fm = franchise[members]
    w = planted.item_weight[members]
    cdf = np.cumsum(w)
    start = np.searchsorted(fm, np.arange(n_franchises))
    cdf = (cdf - np.r_[0.0, cdf][start][fm]) / np.bincount(fm, w, n_franchises)[fm] + fm
    pick = np.minimum(np.searchsorted(cdf, f + rng.random(f.size), side="left"), members.size - 1)
    new_key = users[slot] * n_items + members[pick]
    pos = np.minimum(np.searchsorted(keys, new_key), keys.size - 1)
    fresh = keys[pos] != new_key
    new_key, once = np.unique(new_key[fresh], return_index=True)
    out = keys.copy()
    out[slot[fresh][once]] = new_key
    return np.sort(out)


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
        local, item = _pick_items(counts[u0:u1], planted.user_taste[u0:u1], forced, planted, cfg, rng, u0)
        user = local + u0
        score = (
            planted.mu
            + planted.user_bias[user]
            + planted.item_bias[item]
            + np.einsum("ij,ij->i", planted.user_factors[user], planted.item_factors[item])
            + cfg.fan_effect * franchise_affinity(planted, user, item)
            + cfg.rating_noise * rng.standard_normal(user.size)
        )
        t0, t1 = _T0, _T1
        if cfg.layout == "ml-latest":
            t0, t1 = synth_latest.TIME_SPAN
        start = rng.integers(t0, t1 - 86400, u1 - u0)
        span = np.minimum(t1 - start, (rng.exponential(0.15, u1 - u0) * (t1 - t0)).astype(np.int64) + 3600)
        ts = start[local] + (rng.random(user.size) * span[local]).astype(np.int64)
        # ua split: `test_per_user` random ratings of every user go to the test set
        within = np.argsort(local + rng.random(user.size))  # users stay grouped, random order inside
        first = np.searchsorted(local[within], np.arange(u1 - u0))
        rank = np.empty(user.size, dtype=np.int64)
        rank[within] = np.arange(user.size) - first[local[within]]
        yield {  # the rating is the layout's cut of the score (the writers)
            "user": user + 1,
            "item": item + 1,
            "score": score,
            "timestamp": ts,
            "test": rank < cfg.test_per_user,
        }


def planted_model(cfg: SynthConfig) -> Planted:
    """The planted model for `cfg` (the same one `write_synth` draws from)."""
    return _planted(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0]))


def int_rows_matrix(cols: list[np.ndarray], sep: str = "\t") -> np.ndarray:
    """Non-negative integer columns as a byte matrix, one text line per row ("1\t2\t5\t881250949\n") with
    zero bytes as left padding of each number; `squeeze` turns selected rows into the file's bytes. `sep` is
    one separator, or one per gap between columns (",,.," writes "1,2,3.5,881250949")."""
    n = cols[0].size
    seps = sep if len(sep) == len(cols) - 1 else sep * (len(cols) - 1)
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
        mat[:, pos] = ord(seps[j]) if j < len(cols) - 1 else 10
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
    """Write a synthetic dataset into `out` atomically, streaming user chunks so memory stays bounded;
    returns a summary. Layout ml-100k: u.data, ua.base, ua.test, u.item, u.user, u.genre, u.occupation,
    u.info; layout ml-latest: ratings.csv (half stars) and movies.csv (fmrec.data.synth_latest)."""
    cfg = cfg or SynthConfig()
    cfg.validate()
    check_memory(cfg)
    check_disk(cfg, out)
    counts = {"ratings": 0, "train": 0, "test": 0, "positive": 0}
    with atomic_dir(out, replace=replace) as tmp:
        model = _model(cfg)
        if cfg.layout == "ml-latest":
            _write_latest(tmp, cfg, model, counts)
        else:
            _write_100k(tmp, cfg, model, counts)
        counts["train"] = counts["ratings"] - counts["test"]
        summary = {"config": dataclasses.asdict(cfg), **counts, "synthetic": True}
        (tmp / "SYNTHETIC.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_100k(
    tmp: Path,
    cfg: SynthConfig,
    model: tuple[Planted, np.ndarray, np.ndarray, np.random.SeedSequence],
    counts: dict[str, int],
) -> None:
    with (
        open(tmp / "u.data", "wb") as f_all,
        open(tmp / "ua.base", "wb") as f_base,
        open(tmp / "ua.test", "wb") as f_test,
    ):
        for chunk in _chunks(cfg, model):
            rating = (1 + np.searchsorted(_RATING_CUTS, chunk["score"])).astype(np.int8)
            lines = int_rows_matrix([chunk["user"], chunk["item"], rating, chunk["timestamp"]])
            f_all.write(squeeze(lines))
            f_base.write(squeeze(lines[~chunk["test"]]))
            f_test.write(squeeze(lines[chunk["test"]]))
            counts["ratings"] += int(chunk["user"].size)
            counts["test"] += int(chunk["test"].sum())
            counts["positive"] += int((rating >= 4).sum())
    meta_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[3])
    planted = model[0]
    (tmp / "u.item").write_text(_items_text(cfg, planted, meta_rng), encoding="latin-1")
    (tmp / "u.user").write_text(_users_text(cfg, meta_rng), encoding="latin-1")
    (tmp / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)), encoding="latin-1")
    (tmp / "u.occupation").write_text("".join(f"{o}\n" for o in OCCUPATIONS), encoding="latin-1")
    (tmp / "u.info").write_text(f"{cfg.users} users\n{cfg.items} items\n{counts['ratings']} ratings\n")


def _latest_ids(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """ml-latest's listed movie ids, the positions of the rated ones (item i is ids[rated[i - 1]]) and the
    metadata stream after them (movies.csv draws from it next)."""
    meta_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[3])
    ids = synth_latest.movie_ids(cfg.items + cfg.unrated_items, meta_rng)
    rated = np.sort(meta_rng.permutation(ids.size)[: cfg.items])  # the listed movies that get ratings
    return ids, rated, meta_rng


def movie_franchises(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(movie ids as written, each one's planted franchise, -1 for none): which held-out movies are
    follow-ups a neighbourhood model can see (benchmarks/bench_gap.py)."""
    franchise = planted_model(cfg).item_franchise
    if cfg.layout == "ml-latest":
        ids, rated, _ = _latest_ids(cfg)
        return ids[rated], franchise
    return np.arange(1, cfg.items + 1, dtype=np.int64), franchise


def _write_latest(
    tmp: Path,
    cfg: SynthConfig,
    model: tuple[Planted, np.ndarray, np.ndarray, np.random.SeedSequence],
    counts: dict[str, int],
) -> None:
    """ratings.csv (userId,movieId,rating,timestamp; half stars) and movies.csv, as ml-latest-small writes
    them; the holdout split is the reader's (fmrec.data.readers.holdout_split), so none is written."""
    ids, rated, meta_rng = _latest_ids(cfg)
    with open(tmp / "ratings.csv", "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        for chunk in _chunks(cfg, model):
            halves = synth_latest.half_stars(chunk["score"])  # 1..10: 0.5..5 stars
            cols = [chunk["user"], ids[rated[chunk["item"] - 1]], halves // 2, 5 * (halves % 2)]
            fh.write(squeeze(int_rows_matrix([*cols, chunk["timestamp"]], sep=",,.,")))
            counts["ratings"] += int(chunk["user"].size)
            per_user = np.bincount(chunk["user"] - chunk["user"][0])
            counts["test"] += int(np.minimum(per_user[per_user > cfg.test_per_user], cfg.test_per_user).sum())
            counts["positive"] += int((halves >= 8).sum())
    text = synth_latest.movies_csv(ids, rated, model[0].item_factors, meta_rng)
    (tmp / "movies.csv").write_text(text, encoding="utf-8", newline="")
