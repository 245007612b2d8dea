"""The recommend Lambda's endpoint stand-in: bodies scored with the endpoint twin's parsing and FM math."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.support.lambda_world import endpoint_scores, invoke_response


class ScoringCaller:
    """Scores each body as the endpoint twin would; `variants` answer in turn; `delay` lets calls overlap.

    As an EndpointCaller (`invoke`) it stands in for the Lambda's caller; as a sagemaker-runtime client
    (`invoke_endpoint`) it sits under the Lambda's own EndpointCaller. Either way it records the bodies and
    the peak of concurrent calls."""

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

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        """sagemaker-runtime's InvokeEndpoint: the response the Lambda's EndpointCaller reads."""
        scores, variant = self.invoke(kwargs["Body"])
        return invoke_response(scores, str(variant))

    def instances(self) -> list[dict[str, Any]]:
        """Every instance of every body so far."""
        return [i for b in self.bodies for i in json.loads(b)["instances"]]
