"""The recommend service's questions and answers: plain values the handler parses and renders."""

from __future__ import annotations

from dataclasses import dataclass

PATH_ENDPOINT = "endpoint"
PATH_FAST = "fast_path"
PATH_COLD = "cold_start"


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


@dataclass(frozen=True)
class Similar:
    movie_id: int
    title: str
    model_version: str | None
    items: list[Item]
    candidates: int
