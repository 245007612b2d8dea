"""An EndpointCaller double scoring bodies with the endpoint twin's math; it records bodies, concurrency."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.support.lambda_world import endpoint_scores


class ScoringCaller:
    """Scores each body as the endpoint twin would; `variants` answer in turn; `delay` lets calls overlap."""

    def __init__(
        self, model: Any, lookup: Any, variants: list[str] | None = None, delay: float = 0.02
    ) -> None:
        self.model, self.lookup = model, lookup
        self.variants = variants or ["v1"]
        self.delay = delay
        self.bodies: list[bytes] = []
        self.active = self.peak = 0
        self._lock = threading.Lock()

    def invoke(self, body: bytes) -> tuple[list[float], str | None]:
        with self._lock:
            n = len(self.bodies)
            self.bodies.append(body)
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)  # long enough for the other bodies' calls to start meanwhile
        with self._lock:
            self.active -= 1
        return endpoint_scores(self.model, self.lookup, body), self.variants[n % len(self.variants)]
