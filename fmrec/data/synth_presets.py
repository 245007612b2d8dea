"""The synthetic generator's presets, flag ranges, memory and disk checks (no numpy: the CLI reads them)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmrec.errors import InputError

if TYPE_CHECKING:
    from fmrec.data.synth import SynthConfig

_USERS_PER_CHUNK = 8192  # fmrec.data.synth's chunk of users

LAYOUTS = ("ml-100k", "ml-latest")
# ml-latest-small's movie ids run to 163,949 for 9,125 movies: about one id in 18 is used
ID_GAP = 163949 / 9125
# name -> inclusive (low, high). The sizes bound what one generator process is meant for (ml-32m has 200,948
# users, 87,585 movies and 32M ratings); memory is checked separately (check_memory).
LIMITS: dict[str, tuple[float, float]] = {
    "users": (1, 10_000_000),
    "items": (1, 10_000_000),
    "ratings": (1, 2_000_000_000),
    "factors": (1, 256),
    "test_per_user": (1, 1000),
    "min_per_user": (2, 10_000),
    "clusters": (0, 4096),
    "taste_share": (0.0, 1.0),
    "taste_alpha": (1e-6, 1e3),
    "franchise_items": (0.0, 1.0),
    "franchise_size": (2.0, 100.0),
    "follow_share": (0.0, 0.9),
    "fan_effect": (0.0, 5.0),
    "rating_noise": (0.0, 5.0),
    "factor_scale": (0.0, 5.0),
    "unrated_items": (0, 10_000_000),
    "popularity_sigma": (0.1, 5.0),
    "popularity_head": (0.0, 6.0),
    "popularity_tail": (0.0, 5.0),
    "activity_head": (0.0, 6.0),
    "activity_sigma": (0.1, 5.0),
}


# Named shapes (`fmrec data synth --preset NAME`); each is calibrated against the real dataset of that name
# (docs/data.md, benchmarks/bench_synth_realism.py). Explicit arguments override a preset's values.
PRESETS: dict[str, dict[str, Any]] = {
    "ml-100k": {},
    # ml-latest-small (2016): 671 users, 9,125 movies listed of which 9,066 rated, 100,004 half-star ratings,
    # at least 20 per user; no official split (readers hold out 10 per user)
    "ml-latest-small": {
        "users": 671,
        "items": 9066,
        "unrated_items": 59,
        "ratings": 100_004,
        "layout": "ml-latest",
        # a steeper head and tail (max 341 ratings for a movie, median 3, a third rated once) and heavier
        # users (median 71, max 2,391) than ml-100k
        "popularity_sigma": 2.1,
        "popularity_head": 3.5,
        "popularity_tail": 2.5,
        "activity_sigma": 1.4,
        "activity_head": 2.7,
        # more picks by taste than ml-100k's 90%, and users in fewer clusters: "most popular" is weaker on
        # the real 9k catalogue (0.088 vs EASE 0.206-0.213) than on ml-100k (0.133 vs 0.309), and the
        # default fmrec model further behind EASE (-15% to -18% against -4%; docs/data.md)
        "taste_share": 0.95,
        "taste_alpha": 0.06,
    },
}


def n_clusters(items: int, clusters: int) -> int:
    """Taste clusters: `clusters`, or 0 for about 0.6 sqrt(items) between 2 and 128; never more than items."""
    return min(items, clusters or min(max(round(0.6 * math.sqrt(items)), 2), 128))


def memory_estimate(cfg: SynthConfig) -> int:
    """Peak bytes the generator needs for `cfg`, an upper estimate: per-movie arrays plus the movie file's
    text (Python strings, about 600 bytes a movie: 1.79 GB measured peak for 2,000,000 movies against 2.1 GB
    estimated), each user's mixture over clusters, and one chunk of users' ratings in flight."""
    clusters = n_clusters(cfg.items, cfg.clusters)
    chunk_users = min(cfg.users, _USERS_PER_CHUNK)
    chunk_ratings = cfg.ratings * chunk_users / cfg.users
    return int(
        150e6  # interpreter, numpy, scipy
        + (cfg.items + cfg.unrated_items) * (8 * (32 + cfg.factors) + 640)
        + cfg.users * (clusters * 12 + 8 * cfg.factors + 64)
        + chunk_users * clusters * 24
        + chunk_ratings * 240
    )


def available_memory() -> int | None:
    """Bytes this machine can still give (Linux MemAvailable), or None where that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(cfg: SynthConfig, available: int | None = None) -> None:
    """Refuse, before allocating anything, a shape whose generation would not fit in memory."""
    need = memory_estimate(cfg)
    have = available_memory() if available is None else available
    if have is not None and need > have:
        raise InputError(
            f"synth: {cfg.users:,} users x {cfg.items + cfg.unrated_items:,} movies, {cfg.ratings:,} ratings "
            f"needs about {need / 2**30:.1f} GiB of memory, more than the {have / 2**30:.1f} GiB available; "
            f"use fewer --items or --ratings"
        )


def disk_estimate(cfg: SynthConfig) -> int:
    """Bytes the generator writes for `cfg`, an upper estimate: a text line per rating (user id, movie id,
    a rating of up to 3 characters, a 10-digit timestamp, 4 separators), twice in the ml-100k layout (u.data,
    and ua.base or ua.test), plus about 200 bytes a movie and 40 a user for the metadata files."""
    movies = cfg.items + cfg.unrated_items
    top_id = math.ceil(movies * ID_GAP * 2) if cfg.layout == "ml-latest" else movies  # ids have gaps there
    line = len(str(cfg.users)) + len(str(top_id)) + 3 + 10 + 4
    copies = 2 if cfg.layout == "ml-100k" else 1
    return int(cfg.ratings) * line * copies + movies * 200 + int(cfg.users) * 40


def free_space(out: str | Path) -> int:
    """Bytes free on the file system `out` would be written to (its nearest existing folder)."""
    folder = Path(out).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk(cfg: SynthConfig, out: str | Path, free: int | None = None) -> None:
    """Refuse, before writing anything, a shape whose files would not fit on the disk `out` is on: a full disk
    fails the write hours in and starves everything else on the machine."""
    need = disk_estimate(cfg)
    have = free_space(out) if free is None else free
    if need > have:
        raise InputError(
            f"synth: {cfg.ratings:,} ratings write about {need / 1e9:.1f} GB into {out}, more than the "
            f"{have / 1e9:.1f} GB free there; use fewer --ratings or an --out on a larger disk"
        )
