"""The recommend service's questions and answers: plain values the handler parses and renders."""

from __future__ import annotations

from dataclasses import dataclass

PATH_ENDPOINT = "endpoint"
PATH_FAST = "fast_path"
PATH_COLD = "cold_start"
PATH_FOLD_IN = "fold_in"  # a user the model never saw, scored from their stored ratings


@dataclass(frozen=True)
class Query:
    user_id: int
    k: int = 10
    exclude_rated: bool = True
    min_score: float | None = None
    genre: str | None = None


@dataclass(frozen=True)
class SimilarQuery:
    movie_id: int
    k: int = 10
    genre: str | None = None


@dataclass(frozen=True)
class Item:
    movie_id: int
    title: str
    score: float
    rank: int


@dataclass(frozen=True)
class Recommendation:
    user_id: int
    model_version: str | None
    serving_path: str
    items: list[Item]
    candidates: int
    stored_ratings: int = 0  # the user's stored ratings folded into their history (fmrec.ratings.fold_in)


@dataclass(frozen=True)
class RatingsPosted:
    """The answer to POST /users/{userId}/ratings."""

    user_id: int
    stored: int
    ignored: int
    unknown_movies: list[int]  # stored, but not in the served model: folded in once a model knows them


@dataclass(frozen=True)
class Similar:
    movie_id: int
    title: str
    model_version: str | None
    items: list[Item]
    candidates: int
