"""Where the serving artifacts are read from: S3 in the Lambda, a local folder in the API twin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lambdas.recommend.errors import ServiceUnavailable


class ArtifactStore(Protocol):
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def describe(self, key: str) -> str: ...


@dataclass
class S3Store:
    """Serving artifacts under s3://bucket/prefix (see docs/api.md for the layout)."""

    bucket: str
    prefix: str
    client: Any

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise ServiceUnavailable(
                "the serving artifacts cannot be read", 5, f"{self.describe(key)}: {code or exc}"
            ) from exc
        return bytes(response["Body"].read())

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


@dataclass
class DirStore:
    """The same layout in a local folder (the API twin's --artifacts)."""

    root: Path

    def get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            # a folder where a file belongs, no permission: the service's fault, not the caller's
            raise ServiceUnavailable(
                "the serving artifacts cannot be read", 5, f"{self.describe(key)}: {exc.strerror or exc}"
            ) from exc

    def describe(self, key: str) -> str:
        return str(self.root / key)
