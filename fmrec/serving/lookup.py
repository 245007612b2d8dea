"""Lookup artifacts (ids -> one-hot columns, titles, rated movies); standard library only (runs in Lambda)."""

from __future__ import annotations

import bisect
import json
import math
import os
import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec.features.columns import ColumnLayout
from fmrec.features.history import served_history
from fmrec.features.settings import DEFAULTS
from fmrec.io_utils import atomic_write_bytes
from fmrec.serving.neighbour_table import ServedNeighbours

LOOKUP_JSON = "lookup.json"
LOOKUP_BIN = "lookup.bin"
LOOKUP_FILES: tuple[str, ...] = (LOOKUP_JSON, LOOKUP_BIN)
FORMAT_VERSION = 1
_BIN_MAGIC = b"FMRECLK1"
# lookup.bin sections, in order: name -> array typecode (all little-endian)
_SECTIONS = (
    ("movie_count", "I"),
    ("movie_mean", "f"),
    ("rated_indptr", "Q"),
    ("rated_pos", "I"),
    ("user_aux_indptr", "Q"),
    ("user_aux_cols", "I"),
    ("movie_aux_indptr", "Q"),
    ("movie_aux_cols", "I"),
)


def _arr(code: str, values: Any = ()) -> array:
    return array(code, values)


@dataclass(frozen=True)
class LookupHistory:
    """The rated-movie history block a model was trained with (fmrec.features.history): where its columns
    start, the weight scale, the cap of columns per row; in lookup.json as {"offset", "scale", "cap"}."""

    offset: int
    scale: float
    cap: int
    fixed: bool = False  # fmrec.features.history.HistoryConfig.fixed: served with the model's own cap

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"offset": self.offset, "scale": self.scale, "cap": self.cap}
        return {**out, "fixed": True} if self.fixed else out  # a draws lookup's JSON is what it was

    @classmethod
    def from_json(cls, raw: Any) -> LookupHistory | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise TypeError(f"history: expected an object, got {type(raw).__name__}")
        scale = float(raw["scale"])
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"history scale {scale}: expected a positive number")
        fixed = raw.get("fixed", False)
        if not isinstance(fixed, bool):
            raise ValueError(f"history fixed {fixed!r}: expected true or false")
        cap = int(raw.get("cap", 0))
        if fixed and cap < 1:
            raise ValueError(f"history cap {cap}: a fixed history needs a cap of at least 1")
        return cls(offset=int(raw["offset"]), scale=scale, cap=cap, fixed=fixed)


@dataclass(frozen=True)
class UserSide:
    """One user's feature columns and their values (Lookup.user_side), and every movie position they rated
    (ascending: what exclude_rated leaves out, all of them even past the served history's bound)."""

    user_pos: int | None
    keys: tuple[int, ...]
    values: tuple[float, ...]
    rated: tuple[int, ...]


@dataclass
class Lookup:
    """Everything the recommend path needs to turn ids into FM feature keys and back.

    Column layout: `columns` (fmrec.features.columns.ColumnLayout: user block, movie block, the auxiliary
    blocks `aux_blocks`, the history block). `user_keys` / `movie_keys` give every column of one side, aux
    included; `user_values` / `movie_values` their values: 1.0 for the one-hot id columns, the block's value
    (preprocess's --aux-value) for aux columns, and scale/sqrt(n) for the n columns of the user's rated-movie
    history when the model has that block.
    """

    feature_dim: int
    user_ids: list[int]
    movie_ids: list[int]
    titles: list[str]
    genres: list[list[str]]
    movie_count: array  # per movie position: train ratings
    movie_mean: array  # per movie position: mean train rating (0 when unrated)
    rated_indptr: array  # CSR over user positions
    rated_pos: array  # movie positions each user rated in train, ascending
    label_mode: str = "binary"  # "binary" | "regression"
    label_threshold: float | None = float(DEFAULTS["threshold"])
    user_aux_indptr: array | None = None
    user_aux_cols: array | None = None
    movie_aux_indptr: array | None = None
    movie_aux_cols: array | None = None
    # [{"name", "offset", "size", "labels", "value"}] ("value" absent in a lookup older than --aux-value: 1)
    aux_blocks: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # The rated-movie history block (fmrec.features.history), or None without one.
    history: LookupHistory | None = None
    # The neighbour column's table (fmrec.features.neighbours), after lookup.bin's sections; None without one.
    neighbours: ServedNeighbours | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self.__dict__.pop("_columns", None)  # derived from the fields: rebuilt after any change

    # ---- positions and columns
    @property
    def columns(self) -> ColumnLayout:
        """The column layout of these ids, aux blocks and history block; built once (movie_keys is hot)."""
        cols: ColumnLayout | None = self.__dict__.get("_columns")
        if cols is None:  # first use after construction or a change
            cols = ColumnLayout.from_lookup(
                len(self.user_ids),
                len(self.movie_ids),
                self.feature_dim,
                self.aux_blocks,
                None if self.history is None else self.history.offset,
                None if self.neighbours is None else self.neighbours.column,
            )
            self.__dict__["_columns"] = cols
        return cols

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    @property
    def movie_offset(self) -> int:
        return self.columns.movies.offset

    def user_position(self, user_id: int) -> int | None:
        i = bisect.bisect_left(self.user_ids, user_id)
        return i if i < len(self.user_ids) and self.user_ids[i] == user_id else None

    def movie_position(self, movie_id: int) -> int | None:
        i = bisect.bisect_left(self.movie_ids, movie_id)
        return i if i < len(self.movie_ids) and self.movie_ids[i] == movie_id else None

    def user_column(self, pos: int) -> int:
        return self.columns.user_column(pos)

    def movie_column(self, pos: int) -> int:
        return self.columns.movie_column(pos)

    def rated_positions(self, user_pos: int) -> list[int]:
        return self.rated_pos[self.rated_indptr[user_pos] : self.rated_indptr[user_pos + 1]].tolist()

    def user_side(
        self,
        user_pos: int | None,
        history: Sequence[int] | None = None,
        aux: Sequence[int] | None = None,
    ) -> UserSide:
        """A user's feature columns and values: their one-hot column (when `user_pos` is not None), their
        auxiliary columns (`aux`, default the lookup's) and the history block of the movie positions they
        rated (`history`, default the lookup's train ratings), bounded by served_history.

        The one builder of a user's side for serving, the batch and the evaluation. Fold-in (a user's stored
        ratings added at serving, known user or not) passes the extra movies in `history`.
        """
        keys: list[int] = []
        if user_pos is not None:
            keys.append(self.columns.user_column(user_pos))
            if aux is None and self.user_aux_indptr is not None and self.user_aux_cols is not None:
                lo, hi = self.user_aux_indptr[user_pos], self.user_aux_indptr[user_pos + 1]
                keys += self.user_aux_cols[lo:hi].tolist()
        if aux is not None:
            keys += aux
        values = [self.columns.aux_value(c) for c in keys]  # 1 for the user's column, an aux block's value
        if history is None:
            rated = self.rated_positions(user_pos) if user_pos is not None else []
        else:
            rated = sorted(set(history))
            if rated and not (rated[0] >= 0 and rated[-1] < self.n_movies):
                raise InputError(f"history: movie positions must be in [0, {self.n_movies}); got {rated}")
        block = self.columns.history
        if block is not None and self.history is not None and rated:
            h = self.history
            served, value = (
                served_history(rated, h.scale, h.cap, fixed=True)
                if h.fixed
                else served_history(rated, h.scale)
            )
            keys += [block.offset + p for p in served]
            values += [value] * len(served)
        return UserSide(user_pos, tuple(keys), tuple(values), tuple(rated))

    def user_keys(self, user_pos: int) -> list[int]:
        return list(self.user_side(user_pos).keys)

    def user_values(self, user_pos: int) -> list[float]:
        """The values of `user_keys(user_pos)`, in the same order."""
        return list(self.user_side(user_pos).values)

    def movie_keys(self, movie_pos: int) -> list[int]:
        keys = [self.columns.movies.offset + movie_pos]  # movie_column, without a call: hot at cold start
        if self.movie_aux_indptr is not None and self.movie_aux_cols is not None:
            lo, hi = self.movie_aux_indptr[movie_pos], self.movie_aux_indptr[movie_pos + 1]
            keys += self.movie_aux_cols[lo:hi].tolist()
        return keys

    def movie_values(self, movie_pos: int) -> list[float]:
        """The values of `movie_keys(movie_pos)`, in the same order: 1.0 for the movie's column, the aux
        block's value for each aux column."""
        return [self.columns.aux_value(c) for c in self.movie_keys(movie_pos)]

    def popular_positions(self, k: int, min_count: int = 1) -> list[int]:
        """Cold start: the k movie positions with most train ratings (ties: higher mean, then position)."""
        ranked = sorted(
            (p for p in range(self.n_movies) if self.movie_count[p] >= min_count),
            key=lambda p: (-self.movie_count[p], -self.movie_mean[p], p),
        )
        return ranked[:k]

    # ---- serialization
    def to_blobs(self) -> dict[str, bytes]:
        header = {
            "format_version": FORMAT_VERSION,
            "feature_dim": self.feature_dim,
            "n_users": self.n_users,
            "n_movies": self.n_movies,
            "movie_offset": self.movie_offset,
            "label_mode": self.label_mode,
            "label_threshold": self.label_threshold,
            "aux_blocks": self.aux_blocks,
            "has_aux": {"user": self.user_aux_indptr is not None, "movie": self.movie_aux_indptr is not None},
            "meta": self.meta,
            "history": None if self.history is None else self.history.as_json(),
            "neighbours": self.neighbours is not None,
            "user_ids": self.user_ids,
            "movie_ids": self.movie_ids,
            "titles": self.titles,
            "genres": self.genres,
        }
        parts = [_BIN_MAGIC]
        for name, code in _SECTIONS:
            values = getattr(self, name)
            arr = _arr(code) if values is None else _arr(code, values)
            if sys.byteorder != "little":
                arr.byteswap()
            raw = arr.tobytes()
            parts.append(struct.pack("<16sBQ", name.encode(), ord(code), len(arr)))
            parts.append(raw)
        if self.neighbours is not None:
            parts.append(self.neighbours.to_blob())
        return {
            LOOKUP_JSON: json.dumps(
                header, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8"),
            LOOKUP_BIN: b"".join(parts),
        }

    @classmethod
    def from_blobs(cls, blobs: Mapping[str, bytes], source: str = "lookup") -> Lookup:
        """Build from the raw bytes of LOOKUP_FILES (e.g. S3 objects read by the Lambda)."""
        missing = [n for n in LOOKUP_FILES if n not in blobs]
        if missing:
            raise InputError(f"{source}: missing lookup file(s) {', '.join(missing)}")
        try:
            header = json.loads(blobs[LOOKUP_JSON].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{source}/{LOOKUP_JSON}: not valid JSON ({exc})") from None
        if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{source}/{LOOKUP_JSON}: format_version {header.get('format_version')!r}, "
                f"expected {FORMAT_VERSION}"
                if isinstance(header, dict)
                else f"{source}/{LOOKUP_JSON}: expected a JSON object"
            )
        binary = f"{source}/{LOOKUP_BIN}"
        sections, end = _parse_bin(blobs[LOOKUP_BIN], binary)
        tail = blobs[LOOKUP_BIN][end:] if header.get("neighbours") else None
        try:
            lookup = cls(
                feature_dim=int(header["feature_dim"]),
                user_ids=[int(x) for x in header["user_ids"]],
                movie_ids=[int(x) for x in header["movie_ids"]],
                titles=list(header["titles"]),
                genres=[list(g) for g in header["genres"]],
                movie_count=sections["movie_count"],
                movie_mean=sections["movie_mean"],
                rated_indptr=sections["rated_indptr"],
                rated_pos=sections["rated_pos"],
                label_mode=str(header["label_mode"]),
                label_threshold=header["label_threshold"],
                user_aux_indptr=sections["user_aux_indptr"] if header["has_aux"]["user"] else None,
                user_aux_cols=sections["user_aux_cols"] if header["has_aux"]["user"] else None,
                movie_aux_indptr=sections["movie_aux_indptr"] if header["has_aux"]["movie"] else None,
                movie_aux_cols=sections["movie_aux_cols"] if header["has_aux"]["movie"] else None,
                aux_blocks=list(header["aux_blocks"]),
                meta=dict(header["meta"]),
                history=LookupHistory.from_json(header.get("history")),
                neighbours=None if tail is None else ServedNeighbours.from_blob(tail, binary),
            )
            lookup.check(source)  # inside the try: the column layout reads the aux blocks' offsets and sizes
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}/{LOOKUP_JSON}: missing or malformed field ({exc})") from None
        return lookup

    def check(self, source: str = "lookup") -> None:
        """Internal consistency: the arrays line up with the ids."""
        nu, nm = self.n_users, self.n_movies
        problems = []
        if len(self.titles) != nm or len(self.genres) != nm:
            problems.append("titles/genres not aligned with movie_ids")
        if len(self.movie_count) != nm or len(self.movie_mean) != nm:
            problems.append("movie_count/movie_mean not aligned with movie_ids")
        if len(self.rated_indptr) != nu + 1 or self.rated_indptr[-1] != len(self.rated_pos):
            problems.append("rated_indptr does not match user_ids and rated_pos")
        if self.neighbours is not None and self.neighbours.n_movies != nm:
            problems.append("the neighbour table is not aligned with movie_ids")
        if self.user_ids != sorted(set(self.user_ids)) or self.movie_ids != sorted(set(self.movie_ids)):
            problems.append("user_ids/movie_ids not sorted and unique")
        problems += self.columns.problems()
        if problems:
            raise InputError(f"{source}: inconsistent lookup: {'; '.join(problems)}")


def _parse_bin(raw: bytes, source: str) -> tuple[dict[str, array], int]:
    if not raw.startswith(_BIN_MAGIC):
        raise InputError(f"{source}: not a lookup binary (bad magic)")
    pos = len(_BIN_MAGIC)
    out: dict[str, array] = {}
    for name, code in _SECTIONS:
        if pos + 25 > len(raw):
            raise InputError(f"{source}: truncated at byte {pos} (section {name})")
        got_name, got_code, count = struct.unpack_from("<16sBQ", raw, pos)
        pos += 25
        if got_name.rstrip(b"\0").decode() != name or chr(got_code) != code:
            raise InputError(f"{source}: byte {pos - 25}: section {got_name!r}, expected {name}")
        arr = _arr(code)
        size = arr.itemsize * count
        if pos + size > len(raw):
            raise InputError(f"{source}: truncated in section {name}")
        arr.frombytes(raw[pos : pos + size])
        if sys.byteorder != "little":
            arr.byteswap()
        pos += size
        out[name] = arr
    return out, pos


def unknown_genre(genre: str, genres: Any, where: str) -> InputError:
    """The error for a genre no movie of a model has; it lists the genres its movies do have.

    The genres come from the model's own movie file, so each MovieLens layout brings its spelling:
    ml-100k/ml-1m "Children's", ml-latest/25m/32m "Children" and "IMAX".
    """
    known = sorted({str(g) for g in genres}, key=str.lower)
    shown = ", ".join(known) if known else "none (the movies of this model have no genres)"
    return InputError(f"genre: no movie of {where} has {genre!r}; expected one of {shown} (any case)")


def write_lookup(folder: str | os.PathLike[str], lookup: Lookup) -> None:
    """Write LOOKUP_FILES into `folder`, each file atomically."""
    lookup.check(str(folder))
    for name, blob in lookup.to_blobs().items():
        atomic_write_bytes(Path(folder) / name, blob)


def read_lookup(folder: str | os.PathLike[str]) -> Lookup:
    folder = Path(folder)
    blobs: dict[str, bytes] = {}
    for name in LOOKUP_FILES:
        path = folder / name
        try:
            blobs[name] = path.read_bytes()
        except FileNotFoundError:
            raise InputError(
                f"{path}: no such file (a lookup folder holds {', '.join(LOOKUP_FILES)})"
            ) from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return Lookup.from_blobs(blobs, str(folder))
