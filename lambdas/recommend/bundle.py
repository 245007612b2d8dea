"""One model version's serving state: its lookup, request builder, cold-start ranking and candidate sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any

from fmrec.serving.requests import RequestBuilder

# Bayesian damping for cold start: a movie's mean is pulled toward the global mean by this many ratings.
COLD_START_PRIOR = 25
# Request bodies are split at this size (at most the 6 MB InvokeEndpoint limit) and sent concurrently: a
# 60,000-movie catalog is several MB of JSON; smaller bodies let the endpoint's workers score them at once.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html (Body: 6 MB)
DEFAULT_REQUEST_BYTES = 1024 * 1024


def _genre_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [g for g in value.split("|") if g]
    return [str(g) for g in value]


@dataclass
class Bundle:
    """Everything served for one model version: the lookup, its request builder, cold-start ranking, model."""

    version: str | None
    lookup: Any
    builder: RequestBuilder
    popular: list[int]  # movie positions, best damped mean rating first
    popular_score: list[float]
    genre_index: dict[str, tuple[int, ...]]  # lower-cased genre -> movie positions, ascending
    fast_model: Any = None  # fmrec.model.artifact.FMModel, loaded on first fast-path or similar-movies use
    item_terms: Any = None  # fmrec.model.fm.SideTerms of every movie, for score_user_items
    similar_index: Any = None  # fmrec.serving.similar.SimilarIndex
    genre_masks: dict[str, Any] = field(default_factory=dict)  # lower-cased genre -> numpy bool mask
    fingerprint: tuple[Any, ...] = field(default=())

    @classmethod
    def build(
        cls, version: str | None, lookup: Any, max_request_bytes: int = DEFAULT_REQUEST_BYTES
    ) -> Bundle:
        counts = [float(c) for c in lookup.movie_count]
        means = [float(m) for m in lookup.movie_mean]
        total = sum(counts)
        global_mean = sum(c * m for c, m in zip(counts, means, strict=True)) / total if total else 0.0
        damped = [
            (c * m + COLD_START_PRIOR * global_mean) / (c + COLD_START_PRIOR)
            for c, m in zip(counts, means, strict=True)
        ]
        popular = sorted((p for p in range(len(damped)) if counts[p] > 0), key=lambda p: (-damped[p], p))
        index: dict[str, set[int]] = {}
        for pos, value in enumerate(lookup.genres):
            for genre in _genre_names(value):
                index.setdefault(genre.lower(), set()).add(pos)
        return cls(
            version=version,
            lookup=lookup,
            builder=RequestBuilder(lookup, max_request_bytes),
            popular=popular,
            popular_score=damped,
            genre_index={g: tuple(sorted(p)) for g, p in index.items()},
            fingerprint=(lookup.feature_dim, tuple(lookup.user_ids), tuple(lookup.movie_ids)),
        )

    def candidates(
        self,
        user_pos: int | None,
        genre: str | None,
        exclude_rated: bool,
        rated_side: list[int] | None = None,
    ) -> list[int]:
        """Movie positions to score, ascending: those of `genre` (all without one), minus the user's rated
        (`rated_side`, ascending, when given: the training history and the stored ratings)."""
        n = len(self.lookup.movie_ids)
        allowed: tuple[int, ...] | None = None
        if genre is not None:
            # A genre no movie of this model has (the API's enum allows it) matches nothing.
            allowed = self.genre_index.get(genre.lower(), ())
        rated: list[int] = []
        if exclude_rated and rated_side is not None:
            rated = rated_side
        elif exclude_rated and user_pos is not None:
            rated = self.lookup.rated_positions(user_pos)
        if allowed is None:
            # rated is ascending: the candidates are the gaps between rated positions, as C-level ranges.
            bounds = [-1, *rated, n]
            return list(chain.from_iterable(range(a + 1, b) for a, b in pairwise(bounds)))
        skip = set(rated)
        return [p for p in allowed if p not in skip]
