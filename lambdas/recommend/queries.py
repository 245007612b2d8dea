"""The recommend service's questions and answers: plain values the handler parses and renders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fmrec.serving.lookup import UserSide
    from lambdas.recommend.bundle import Bundle

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
class RankQuery:
    """POST /users/{userId}/rankings: the given movies, ordered for the user."""

    user_id: int
    movie_ids: tuple[int, ...]


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
    """Every user route's answer (recommendations, rankings), from any path, cold start included."""

    user_id: int
    model_version: str | None
    serving_path: str
    items: list[Item]
    candidates: int
    unknown_movie_ids: list[int] = field(default_factory=list)  # rankings: ids the model cannot score
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


@dataclass(frozen=True)
class Scored:
    """A scorer's answer: the scores of the asked movie positions, in order, and who produced them."""

    bundle: Bundle  # the version the scores belong to (the endpoint's answering variant)
    scores: list[float]
    model_version: str | None
    serving_path: str


class Scorer(Protocol):
    """The one scoring interface of the Lambda: the endpoint (EndpointScorer) or the model in the Lambda
    (FastScorer). Raises ModelSwapped when the scores came from another version than `bundle`."""

    serving_path: str

    def score(self, bundle: Bundle, side: UserSide, positions: Sequence[int]) -> Scored: ...
