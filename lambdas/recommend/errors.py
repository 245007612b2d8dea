"""The recommend service's own failure: a 503 with Retry-After (endpoint down, artifacts missing)."""

from __future__ import annotations

from fmrec.errors import FmrecError


class ServiceUnavailable(FmrecError):
    """The endpoint is down, still throttled after the retries, or the artifacts are not published."""

    def __init__(self, message: str, retry_after: int = 5, detail: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.detail = detail  # for the log only: it may name buckets and keys the caller need not see


class Misconfigured(FmrecError):
    """The Lambda's configuration (its environment) is invalid: the deployment's fault, a 500, never a 400."""
