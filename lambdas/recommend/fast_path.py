"""The model in the Lambda (numpy layer): each version's retrieval, the fast path's scorer, similar movies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fmrec.errors import InputError
from fmrec.serving.lookup import UserSide
from lambdas.recommend.bundle import Bundle
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.queries import PATH_FAST, Scored
from lambdas.recommend.versions import VersionCache

if TYPE_CHECKING:  # numpy modules: the handler imports them only when a request scores
    from fmrec.serving.retrieval import Retrieval
    from fmrec.serving.similar import SimilarIndex

log = logging.getLogger(__name__)


class Models:
    """Each version's fmrec.serving.retrieval.Retrieval, built once from its model.tar.gz and lookup."""

    def __init__(self, versions: VersionCache) -> None:
        self.versions = versions
        self._lock = threading.Lock()  # the twin calls one handler from several threads

    def retrieval(self, bundle: Bundle) -> Retrieval:
        """The bundle's Retrieval (every path ranks with it); 503 without numpy or with broken artifacts."""
        with self._lock:
            if bundle.retrieval is None:
                try:
                    # local import: numpy comes from the numpy layer; without it, a 503
                    from fmrec.serving.retrieval import Retrieval
                except ImportError as exc:  # the Lambda package without the numpy layer
                    raise ServiceUnavailable(
                        "scoring in the Lambda needs numpy (the numpy layer)", 30, str(exc)
                    ) from exc
                model = self.versions.load_model(bundle.version)
                try:
                    bundle.retrieval = Retrieval(model, bundle.lookup, compact=True)
                except InputError as exc:
                    # A model and lookup that do not belong together are the deployment's fault: 503, logged.
                    log.error("model version %s cannot be served: %s", bundle.version, exc)
                    raise ServiceUnavailable(
                        f"model version {bundle.version} does not match its lookup", 30, str(exc)
                    ) from exc
            return bundle.retrieval

    def similar_index(self, bundle: Bundle) -> SimilarIndex:
        """The bundle's fmrec.serving.similar.SimilarIndex, built once from the movie terms."""
        retrieval = self.retrieval(bundle)  # a 503 when numpy is missing; past it, numpy imports
        # local import: numpy is importable once retrieval has succeeded (the numpy layer)
        from fmrec.serving.similar import SimilarIndex

        with self._lock:
            if bundle.similar_index is None:
                bundle.similar_index = SimilarIndex.from_factors(retrieval.items.factors)
        return bundle.similar_index


class FastScorer:
    """Scores from the model artifact in the Lambda: the endpoint's numbers without calling it."""

    serving_path = PATH_FAST

    def __init__(self, models: Models) -> None:
        self.models = models

    def score(self, bundle: Bundle, side: UserSide, positions: Sequence[int]) -> Scored:
        scores = self.models.retrieval(bundle).score(side, positions)
        return Scored(bundle, scores, bundle.version, PATH_FAST)
