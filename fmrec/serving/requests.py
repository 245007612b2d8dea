"""Sparse JSON inference requests for one user against many movies, split under the 6 MB invocation limit."""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from fmrec.errors import InputError
from fmrec.features.columns import ColumnLayout

# SageMaker real-time InvokeEndpoint rejects bodies over 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
CONTENT_TYPE = "application/json"
_OPEN = '{"instances":['
_CLOSE = "]}"


class LookupLike(Protocol):
    """The part of fmrec.serving.lookup.Lookup the builder reads."""

    @property
    def feature_dim(self) -> int: ...

    @property
    def user_ids(self) -> Sequence[int]: ...

    @property
    def movie_ids(self) -> Sequence[int]: ...

    def user_keys(self, user_pos: int) -> list[int]: ...

    def user_values(self, user_pos: int) -> list[float]: ...

    def movie_keys(self, movie_pos: int) -> list[int]: ...

    def movie_values(self, movie_pos: int) -> list[float]: ...


class DecodeLookup(Protocol):
    """The part of fmrec.serving.lookup.Lookup that decode_keys reads."""

    @property
    def user_ids(self) -> Sequence[int]: ...

    @property
    def movie_ids(self) -> Sequence[int]: ...

    @property
    def columns(self) -> ColumnLayout: ...


@dataclass(frozen=True)
class Payload:
    """One InvokeEndpoint body and the movie positions its predictions belong to, in order."""

    body: bytes
    movie_positions: Sequence[int]


def _interleave(parts: Sequence[str], between: Sequence[str]) -> str:
    """parts[0], between[0], parts[1], ... joined by commas, skipping empty parts."""
    out = [parts[0]] if parts[0] else []
    for item, part in zip(between, parts[1:], strict=True):
        out.append(item)
        if part:
            out.append(part)
    return ",".join(out)


def _number(value: float) -> str:
    """A feature value as JSON: integers bare (one-hot 1), others with float32's 9 significant digits."""
    return "1" if value == 1.0 else format(value, ".9g")


class RequestBuilder:
    """Builds request bodies for one lookup: the user's full feature row plus each movie's, as the seed sends.

    Every instance is `{"data":{"features":{"keys":[...],"shape":[D],"values":[...]}}}`: the user's keys and
    the movie's, in ascending order as in the training rows, where the movie keys are the movie's columns in
    the full feature space (they include the user-block offset, and the movie's auxiliary columns when the
    lookup has them). One-hot features have the value 1;
    auxiliary columns and the user's rated-movie history columns carry the lookup's values. The work is
    per movie asked for (a shortlist), never per catalogue movie: nothing is cached per movie or per user.
    """

    def __init__(self, lookup: LookupLike, max_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.lookup = lookup
        self.max_bytes = max_bytes
        self.n_movies = len(lookup.movie_ids)
        self._shape = f'],"shape":[{int(lookup.feature_dim)}],"values":['

    def build(self, user_pos: int, movie_positions: Sequence[int] | None = None) -> list[Payload]:
        """Bodies scoring user `user_pos` (the lookup's columns and values) against `movie_positions`
        (default: all), each <= max_bytes; with the lookup's neighbour table, the neighbour column too."""
        full: Any = self.lookup  # a Lookup has the table and the rated lists; LookupLike need not
        table = getattr(full, "neighbours", None)
        extra = None
        if table is not None:
            asked = range(self.n_movies) if movie_positions is None else movie_positions
            extra = (table.column, table.values(full.rated_positions(user_pos), asked))
        return self.build_rows(
            self.lookup.user_keys(user_pos), self.lookup.user_values(user_pos), movie_positions, extra
        )

    def build_rows(
        self,
        user_keys: Sequence[int],
        user_values: Sequence[float],
        movie_positions: Sequence[int] | None = None,
        neighbours: tuple[int, Sequence[float]] | None = None,
    ) -> list[Payload]:
        """Bodies scoring a user side (its keys and values, fmrec.serving.lookup.UserSide) against
        `movie_positions` (default: all), each <= max_bytes. `neighbours`: the model's neighbour column and
        the user's value for each movie asked for (fmrec.serving.neighbour_table), the last key of each row
        (the column follows every block); a zero value is left out, as a sparse row leaves out zeros."""
        if len(user_values) != len(user_keys):
            raise InputError(f"user values: {len(user_values)} for {len(user_keys)} user keys")
        if not all(math.isfinite(v) for v in user_values):
            raise InputError(f"user values: expected finite numbers, got {list(user_values)}")
        positions: Sequence[int] = range(self.n_movies) if movie_positions is None else movie_positions
        if not positions:
            return []
        # Keys ascend within every instance, as in AWS's sparse JSON example and in the CSR rows FM trained
        # on: the JSON keys/values/shape element "has the same format as the protocol buffers implementation
        # described for training" (https://docs.aws.amazon.com/sagemaker/latest/dg/cdf-inference.html). The
        # user side's keys (user, aux, history: the history block is last) are split around the movie's keys;
        # where those fall depends only on their blocks, so each split's text is built once per call.
        order = sorted(range(len(user_keys)), key=user_keys.__getitem__)
        ukeys = [int(user_keys[i]) for i in order]
        kstr = [str(k) for k in ukeys]
        vstr = [_number(user_values[i]) for i in order]
        shape, movie_keys, movie_values = self._shape, self.lookup.movie_keys, self.lookup.movie_values
        splits: dict[tuple[int, ...], tuple[list[str], list[str]]] = {}
        instances = []
        column, extra = neighbours if neighbours is not None else (-1, [0.0] * len(positions))
        for i, p in enumerate(positions):
            keys = movie_keys(p)
            cuts = tuple(bisect_left(ukeys, k) for k in keys)
            if cuts not in splits:
                bounds = (0, *cuts, len(ukeys))
                splits[cuts] = (
                    [",".join(kstr[a:b]) for a, b in pairwise(bounds)],
                    [",".join(vstr[a:b]) for a, b in pairwise(bounds)],
                )
            kparts, vparts = splits[cuts]
            mvals = ["1"] * len(keys) if len(keys) == 1 else [_number(v) for v in movie_values(p)]
            tail_key, tail_value = (f",{column}", f",{_number(extra[i])}") if extra[i] else ("", "")
            instances.append(
                '{"data":{"features":{"keys":['
                + _interleave(kparts, [str(k) for k in keys])
                + tail_key
                + shape
                + _interleave(vparts, mvals)
                + tail_value
                + "]}}}"
            )
        room = self.max_bytes - len(_OPEN) - len(_CLOSE)
        payloads: list[Payload] = []
        start, size = 0, 0
        for i, text in enumerate(instances):
            if len(text) > room:
                raise InputError(
                    f"one instance takes {len(text)} bytes; it cannot fit in {self.max_bytes} bytes"
                )
            if size + len(text) + (i > start) > room:
                payloads.append(Payload(_join(instances[start:i]), positions[start:i]))
                start, size = i, 0
            size += len(text) + (i > start)
        payloads.append(Payload(_join(instances[start:]), positions[start:]))
        return payloads


def _join(instances: Sequence[str]) -> bytes:
    return (_OPEN + ",".join(instances) + _CLOSE).encode("ascii")


def build_requests(
    lookup: LookupLike,
    user_pos: int,
    movie_positions: Sequence[int] | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> list[Payload]:
    """One-off convenience; hold a RequestBuilder to reuse its per-movie fragments across requests."""
    return RequestBuilder(lookup, max_bytes).build(user_pos, movie_positions)


def decode_keys(lookup: DecodeLookup, keys: Sequence[int]) -> tuple[int, int]:
    """(user_id, movie_id) of one instance's keys: exactly one user column and one movie column expected."""
    user_pos, movie_pos = lookup.columns.decode_pair(keys)
    return lookup.user_ids[user_pos], lookup.movie_ids[movie_pos]


def decode_body(lookup: DecodeLookup, body: bytes) -> list[tuple[int, int]]:
    """(user_id, movie_id) of every instance of a sparse JSON request body."""
    try:
        doc = json.loads(body)
        instances = doc["instances"]
        return [decode_keys(lookup, inst["data"]["features"]["keys"]) for inst in instances]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"request body: expected sparse JSON instances with data.features.keys ({exc})"
        ) from exc
