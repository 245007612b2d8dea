"""One model version's serving state: its lookup, request builder, cold-start ranking and candidate sets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import TYPE_CHECKING, Any

from fmrec.serving.lookup import Lookup, UserSide, unknown_genre
from fmrec.serving.requests import RequestBuilder

if TYPE_CHECKING:  # numpy modules: loaded only when a request scores
    from fmrec.serving.retrieval import Retrieval
    from fmrec.serving.similar import SimilarIndex

# Bayesian damping for cold start: a movie's mean is pulled toward the global mean by this many ratings.
COLD_START_PRIOR = 25
# Request bodies are split at this size and sent concurrently. 256 KiB: a SageMaker endpoint container buffers
# small bodies at no cost (the endpoint twin's FREE_BODY_BYTES), and one user's feature row, its history
# bounded by fmrec.features.history.SERVED_CAP, is at most ~25 KB, so a body holds 10 or more movies.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html (Body: 6 MB)
DEFAULT_REQUEST_BYTES = 256 * 1024
# Movies the endpoint path retrieves from the model's item terms and asks the endpoint to score (at least k):
# docs/benchmarks.md "Choosing the shortlist" measured it.
DEFAULT_SHORTLIST = 20


def _genre_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [g for g in value.split("|") if g]
    return [str(g) for g in value]


@dataclass
class Bundle:
    """Everything served for one model version: the lookup, its request builder, cold-start ranking, model."""

    version: str | None
    lookup: Lookup
    builder: RequestBuilder
    popular: list[int]  # movie positions, best damped mean rating first
    popular_score: list[float]
    genre_index: dict[str, tuple[int, ...]]  # lower-cased genre -> movie positions, ascending
    # the model's movie terms, loaded on first use (numpy layer)
    retrieval: Retrieval | None = None
    similar_index: SimilarIndex | None = None
    fingerprint: tuple[Any, ...] = field(default=())

    def user_side(self, user_id: int, extra_history: Sequence[int] = ()) -> UserSide | None:
        """The user's feature side in this version; None for a user it was not trained on who brings no
        history, or whose history this version has no columns for (the rating objective): cold start.

        Fold-in (a user's stored ratings, fmrec.ratings.fold_in) passes their movie positions as
        `extra_history`: they join the training history under the same served-history rule, for a known user
        or an unknown one, and are rated movies (exclude_rated leaves them out) even without history columns.
        """
        pos = self.lookup.user_position(user_id)
        if pos is None and (not extra_history or self.lookup.history is None):
            return None
        if not extra_history:
            return self.lookup.user_side(pos)
        trained = self.lookup.rated_positions(pos) if pos is not None else []
        return self.lookup.user_side(pos, history=[*trained, *extra_history])

    @classmethod
    def build(
        cls, version: str | None, lookup: Lookup, max_request_bytes: int = DEFAULT_REQUEST_BYTES
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

    def check_genre(self, genre: str | None) -> None:
        """Refuse (400) a genre no movie of this version has, naming the ones it has (docs/api.md)."""
        if genre is not None and genre.lower() not in self.genre_index:
            names = (g for value in self.lookup.genres for g in _genre_names(value))
            raise unknown_genre(genre, names, f"model version {self.version}")

    def candidates(self, user_pos: int | None, genre: str | None, exclude_rated: bool) -> list[int]:
        """Movie positions of `genre` (all without one), minus the user's rated, ascending (cold start)."""
        n = len(self.lookup.movie_ids)
        allowed: tuple[int, ...] | None = None
        if genre is not None:
            # A genre no movie of this version has matches nothing (the handler refused it with check_genre
            # for the current version; a variant's older version may lack it).
            allowed = self.genre_index.get(genre.lower(), ())
        rated: list[int] = []
        if exclude_rated and user_pos is not None:
            rated = self.lookup.rated_positions(user_pos)
        if allowed is None:
            # rated is ascending: the candidates are the gaps between rated positions, as C-level ranges.
            bounds = [-1, *rated, n]
            return list(chain.from_iterable(range(a + 1, b) for a, b in pairwise(bounds)))
        skip = set(rated)
        return [p for p in allowed if p not in skip]
