"""The version cache: which model version is published (current.json) and each version's bundle and model."""

from __future__ import annotations

import gc
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fmrec.errors import InputError
from fmrec.serving.artifacts import (
    CURRENT_KEY,
    MODEL_FILE,
    is_variant_name,
    lookup_key,
    model_key,
    parse_current,
)
from fmrec.serving.lookup import LOOKUP_FILES, Lookup
from lambdas.recommend.bundle import DEFAULT_REQUEST_BYTES, Bundle
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.store import ArtifactStore

if TYPE_CHECKING:  # numpy: loaded only when a request scores
    from fmrec.model.artifact import FMModel

log = logging.getLogger(__name__)

VERSIONS_KEPT = 2  # during a blue/green shift two variants answer; keep both lookups warm.


class VersionCache:
    """The bundles of the published version and of the versions the endpoint's variants answer with."""

    def __init__(
        self,
        store: ArtifactStore,
        *,
        version_check_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_request_bytes: int = DEFAULT_REQUEST_BYTES,
    ) -> None:
        self.store = store
        self.version_check_seconds = version_check_seconds
        self.clock = clock
        self.max_request_bytes = max_request_bytes
        self._bundles: OrderedDict[str | None, Bundle] = OrderedDict()
        self._current: str | None = None
        self._checked_at: float | None = None
        self._no_lookup: set[str] = set()
        self._lock = threading.Lock()  # the twin calls one handler from several threads

    def _read_current(self) -> str | None:
        """The published version from current.json; None for a bare lookup folder (no versions)."""
        raw = self.store.get(CURRENT_KEY)
        if raw is None:
            return None
        try:
            return parse_current(raw, self.store.describe(CURRENT_KEY))
        except InputError as exc:
            raise ServiceUnavailable("the published model version is unreadable", 5, str(exc)) from exc

    def _load_bundle(self, version: str | None) -> Bundle | None:
        blobs: dict[str, bytes] = {}
        for name in LOOKUP_FILES:
            data = self.store.get(lookup_key(version, name))
            if data is None:
                return None
            blobs[name] = data
        started = time.perf_counter()
        try:
            bundle = Bundle.build(version, Lookup.from_blobs(blobs), self.max_request_bytes)
        except InputError as exc:
            # A broken published artifact is the service's fault, not the caller's: 503, details in the log.
            log.error("unreadable lookup for model version %s: %s", version, exc)
            raise ServiceUnavailable(f"the lookup of model version {version} is unreadable", 30) from exc
        # The lookup and its fragments live as long as the container: keep them out of every later collection.
        gc.collect()
        gc.freeze()
        log.info(
            "loaded lookup for model version %s: %d users, %d movies, feature_dim %d in %.1f ms",
            version,
            len(bundle.lookup.user_ids),
            len(bundle.lookup.movie_ids),
            bundle.lookup.feature_dim,
            (time.perf_counter() - started) * 1e3,
        )
        return bundle

    def _remember(self, bundle: Bundle) -> None:
        self._bundles[bundle.version] = bundle
        self._bundles.move_to_end(bundle.version)
        while len(self._bundles) > VERSIONS_KEPT:
            self._bundles.popitem(last=False)

    def current_bundle(self) -> Bundle:
        """The published version's bundle; current.json is re-read at most every version_check_seconds."""
        now = self.clock()
        with self._lock:
            # Also re-check while nothing is loaded: a failed first load must not count as a version check.
            due = self._checked_at is None or now - self._checked_at >= self.version_check_seconds
            if due or self._current not in self._bundles:
                version = self._read_current()
                self._checked_at = now
                self._no_lookup.clear()
                if version != self._current or version not in self._bundles:
                    bundle = self._bundles.get(version) or self._load_bundle(version)
                    if bundle is None:
                        raise ServiceUnavailable(
                            "no lookup published for the current model version",
                            30,
                            f"no lookup at {self.store.describe(lookup_key(version, ''))}",
                        )
                    self._remember(bundle)
                    self._current = version
            return self._bundles[self._current]

    def bundle_for_variant(self, variant: str, fallback: Bundle) -> Bundle:
        """The lookup of the version an endpoint variant serves; the fallback when that version has none."""
        with self._lock:
            bundle = self._bundles.get(variant)
            if bundle is None:
                if variant in self._no_lookup:
                    return fallback
                bundle = self._load_bundle(variant) if is_variant_name(variant) else None
                if bundle is None:
                    # Remembered until the next current.json check, so a bare folder costs one miss, not one
                    # per request.
                    self._no_lookup.add(variant)
                    log.warning(
                        "no lookup for variant %s; scoring with version %s", variant, fallback.version
                    )
                    return fallback
                self._remember(bundle)
                if self._current is not None and self._current != variant:
                    # The endpoint already serves a newer version than current.json said: follow the endpoint.
                    self._current = variant
            return bundle

    def load_model(self, version: str | None) -> FMModel:
        """The version's model.tar.gz as fmrec.model.artifact.FMModel (every path's retrieval)."""
        # local import: the model reader needs numpy, which only the fast-path layer has
        from fmrec.model.artifact import load_model_tar

        key = model_key(version)
        data = self.store.get(key)
        if data is None:
            if version is None:
                # A bare lookup folder: waiting cannot help until someone publishes a version with its model.
                raise ServiceUnavailable(
                    "no model published: the serving artifacts have no current.json and no model.tar.gz "
                    "(similar movies and the fast path need a published model version)",
                    300,
                    f"no model at {self.store.describe(key)}; publish a version (docs/api.md)",
                )
            raise ServiceUnavailable(
                f"no model for version {version}", 30, f"no model at {self.store.describe(key)}"
            )
        # load_model_tar reads a path; /tmp is the Lambda's only writable place.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, MODEL_FILE)
            Path(path).write_bytes(data)
            del data  # the file holds it now: one copy less at the load's peak (tens of MB at 59k movies)
            try:
                return load_model_tar(path)
            except InputError as exc:
                log.error("unreadable model for version %s: %s", version, exc)
                raise ServiceUnavailable(f"the model of version {version} is unreadable", 30) from exc
