"""The ml-latest file layout for synthetic data: sparse movie ids, half-star ratings, movies.csv (UTF-8)."""

from __future__ import annotations

import csv
import io

import numpy as np

from fmrec.data.synth_presets import ID_GAP

# ml-latest-small (the 100,004-rating release): ratings from 1996-03-29 to 2016-10-16
TIME_SPAN = (828124615, 1476640644)
# Its histogram of 0.5 .. 5 stars (ratings per value, of 100,004)
HALF_STAR_COUNTS = (1101, 3326, 1687, 7271, 4449, 20064, 10538, 28750, 7723, 15095)
# Cut points on the planted score (fmrec.data.synth) that give that histogram on the ml-latest-small preset,
# measured on its scores (seeds 0-2) as their quantiles at the cumulative shares above
HALF_STAR_CUTS = np.array([0.53, 1.51, 1.77, 2.46, 2.76, 3.72, 4.13, 5.35, 5.8])
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "IMAX",
)  # fmt: skip
# Title words; ml-latest titles are UTF-8 ("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)")
_WORDS = (
    "Night", "River", "Summer", "Café", "Ghost", "Señor", "Blue", "Return", "Amélie", "City", "Über", "Lost",
    "Dragon", "Garçon", "Fire", "Winter", "Niño", "Secret", "Étoile", "Road", "King", "Mädchen", "Island",
    "Dream", "Año", "Silent", "Strange", "Lumière", "Last", "Wild", "Crème", "Storm", "Łódź", "Ångström",
)  # fmt: skip


def movie_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """n increasing movie ids with ml-latest's gaps (ids are not 1..n there)."""
    return np.cumsum(rng.geometric(1.0 / ID_GAP, n)).astype(np.int64)


def half_stars(score: np.ndarray) -> np.ndarray:
    """Planted scores as ratings in half stars: 1 (0.5 stars) .. 10 (5 stars)."""
    return (1 + np.searchsorted(HALF_STAR_CUTS, score)).astype(np.int64)


def movies_csv(ids: np.ndarray, rated: np.ndarray, item_factors: np.ndarray, rng: np.random.Generator) -> str:
    """movies.csv: movieId,title,genres. Rated movies take genres from their planted factors (so genre
    features carry signal); the listed but unrated ones get random genres. A few titles are listed twice, some
    carry a comma ("Storm, The (1994)", quoted as csv needs), one in fifty has "(no genres listed)"."""
    n, n_genres = ids.size, len(GENRES)
    factors = rng.standard_normal((n, item_factors.shape[1])) * item_factors.std()
    factors[rated] = item_factors
    g = np.arange(n_genres)
    sign = np.where(g < 10, 1.0, -1.0)
    flags = factors[:, g % factors.shape[1]] * sign > 0.35 + 0.1 * g / n_genres
    years = np.clip(2016 - rng.exponential(12.0, n), 1902, 2016).astype(int)
    words = rng.integers(0, len(_WORDS), (n, 2))
    article = rng.random(n) < 0.08
    titles = [
        f"{_WORDS[a]} {_WORDS[b]} {i + 1}{', The' if article[i] else ''} ({years[i]})"
        for i, (a, b) in enumerate(words.tolist())
    ]
    n_dup = min(n // 2, max(1, round(n * 5 / 9125)))
    order = rng.permutation(n)
    for copy, original in zip(order[:n_dup].tolist(), order[n_dup : 2 * n_dup].tolist(), strict=True):
        titles[copy] = titles[original]
    none = rng.random(n) < 0.02
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["movieId", "title", "genres"])
    for i in range(n):
        names = [GENRES[j] for j in np.flatnonzero(flags[i])]
        genre = "|".join(names) if names and not none[i] else "(no genres listed)"
        writer.writerow([int(ids[i]), titles[i], genre])
    return buf.getvalue()
