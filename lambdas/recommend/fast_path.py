"""Scoring in the Lambda from the model artifact (numpy layer): every movie at once, and similar movies."""

from __future__ import annotations

import threading
from typing import Any

from fmrec.ratings.fold_in import UserSide
from lambdas.recommend.bundle import Bundle
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.queries import Item, Query
from lambdas.recommend.versions import VersionCache


class FastPath:
    """The model and its movie-side FM terms, loaded once per version, and what is computed from them."""

    def __init__(self, versions: VersionCache) -> None:
        self.versions = versions
        self._lock = threading.Lock()  # the twin calls one handler from several threads

    def model_terms(self, bundle: Bundle) -> tuple[Any, Any]:
        """The bundle's model and its movie-side FM terms, loaded once per version (fast path, similar)."""
        with self._lock:
            if bundle.item_terms is None:
                try:
                    # local import: numpy comes from the fast-path layer; without it, a 503
                    from fmrec.model.fm import side_terms
                    from fmrec.serving.ranking import movie_rows
                except ImportError as exc:  # the Lambda package without the numpy layer
                    raise ServiceUnavailable(
                        "scoring in the Lambda needs numpy (the fast-path layer)", 30, str(exc)
                    ) from exc
                model = self.versions.load_model(bundle.version)
                bundle.item_terms = side_terms(model.params, movie_rows(bundle.lookup)).compact()
                bundle.fast_model = model
            return bundle.fast_model, bundle.item_terms

    def genre_mask(self, bundle: Bundle, genre: str) -> Any:
        # local import: numpy is importable once model_terms has succeeded (the fast-path layer)
        import numpy as np

        key = genre.lower()
        mask = bundle.genre_masks.get(key)
        if mask is None:
            mask = np.zeros(len(bundle.lookup.movie_ids), dtype=bool)
            mask[list(bundle.genre_index.get(key, ()))] = True
            bundle.genre_masks[key] = mask  # a benign race: two threads build the same array
        return mask

    def rank(self, bundle: Bundle, side: UserSide, query: Query) -> tuple[list[Item], int]:
        """Every movie scored by one matrix-vector product, the excluded ones masked, then a partial sort.

        `side`: the user's keys, values and rated movies (fmrec.ratings.fold_in: stored ratings folded in)."""
        model, terms = self.model_terms(bundle)  # a 503 when numpy is missing; past it, numpy imports
        # local import: numpy is importable once model_terms has succeeded (the fast-path layer)
        import numpy as np

        # local import: these load numpy, which the Lambda has only with the fast-path layer
        from fmrec.model.fm import score_user_items
        from fmrec.serving.ranking import top_k_indices

        lookup = bundle.lookup
        scores = score_user_items(model.params, terms, side.keys, model.predictor_type, side.values)
        if query.genre is not None:
            mask = self.genre_mask(bundle, query.genre).copy()
        else:
            mask = np.ones(scores.shape[0], dtype=bool)
        if query.exclude_rated:
            mask[np.asarray(side.rated, dtype=np.int64)] = False
        scores[~mask] = -np.inf
        top = top_k_indices(scores, query.k, query.min_score)
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], float(scores[p]), rank)
            for rank, p in enumerate(top.tolist(), start=1)
        ]
        return items, int(np.count_nonzero(mask))

    def similar_index(self, bundle: Bundle) -> Any:
        """The bundle's fmrec.serving.similar.SimilarIndex, built once from the movie terms."""
        _, terms = self.model_terms(bundle)  # a 503 when numpy is missing; past it, numpy imports
        # local import: numpy is importable once model_terms has succeeded (the fast-path layer)
        from fmrec.serving.similar import SimilarIndex

        with self._lock:
            if bundle.similar_index is None:
                bundle.similar_index = SimilarIndex.from_factors(terms.factors)
        return bundle.similar_index
