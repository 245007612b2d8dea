"""The served neighbour table (neighbours.bin) and a user's values from it; standard library only (Lambda)."""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from fmrec.errors import InputError
from fmrec.features.history import served_history

NEIGHBOURS_BIN = "neighbours.bin"
_MAGIC = b"FMRECNB1"
# column, keep, l2, scale, weight, n_movies, nnz (little-endian)
_HEADER = struct.Struct("<QIdddQQ")


def summed_sources(rated: Sequence[int], scale: float) -> tuple[list[int], float]:
    """(the rated movies whose rows a user's values sum, the factor of that sum): each distinct movie and
    scale/sqrt(n), or past SERVED_CAP movies an evenly spaced SERVED_CAP of them, each worth scale*sqrt(n)/cap
    (the history columns' rule, fmrec.features.history.served_history), so a request reads at most
    SERVED_CAP * keep table entries however many movies the user rated."""
    return served_history(sorted(set(rated)), scale)


@dataclass(frozen=True)
class ServedNeighbours:
    """Row h lists the movie positions h predicts most strongly (`targets`) and EASE's weight for each.

    A user who rated the movie positions R has, for movie m, the value scale / sqrt(|R|) * sum over h in R of
    the weight of m in row h (past SERVED_CAP rated movies, summed_sources' sample; the same sum as
    fmrec.features.neighbours.user_values): the model's `column` carries it in every scored row.
    """

    column: int
    keep: int
    l2: float
    scale: float
    weight: float  # the column's linear weight in the served model (fmrec.features.neighbours.served_model)
    indptr: array  # 'Q', n_movies + 1
    targets: array  # 'I'
    weights: array  # 'f'

    @property
    def n_movies(self) -> int:
        return len(self.indptr) - 1

    def values(self, rated: Sequence[int], movies: Sequence[int]) -> list[float]:
        """The value of each of `movies` for a user who rated the positions `rated` (each read once)."""
        wanted = dict.fromkeys(movies, 0.0)
        asked = wanted.keys()
        sources, factor = summed_sources(rated, self.scale)
        indptr, targets, weights = self.indptr, self.targets, self.weights
        for h in sources:
            a, b = indptr[h], indptr[h + 1]
            row = targets[a:b]
            if asked.isdisjoint(row):  # most rows reach no asked movie: one C-level test, not a Python loop
                continue
            for m, w in zip(row, weights[a:b], strict=True):
                if m in wanted:
                    wanted[m] += w
        return [wanted[m] * factor for m in movies]

    def to_blob(self) -> bytes:
        parts = [
            _MAGIC,
            _HEADER.pack(
                self.column, self.keep, self.l2, self.scale, self.weight, self.n_movies, len(self.targets)
            ),
        ]
        for arr in (self.indptr, self.targets, self.weights):
            out = array(arr.typecode, arr)
            if sys.byteorder != "little":
                out.byteswap()
            parts.append(out.tobytes())
        return b"".join(parts)

    @classmethod
    def from_blob(cls, raw: bytes, source: str = NEIGHBOURS_BIN) -> ServedNeighbours:
        if not raw.startswith(_MAGIC):
            raise InputError(f"{source}: not a neighbour table (bad magic)")
        pos = len(_MAGIC)
        if len(raw) < pos + _HEADER.size:
            raise InputError(f"{source}: truncated at byte {len(raw)} (header of {_HEADER.size} bytes)")
        column, keep, l2, scale, weight, n_movies, nnz = _HEADER.unpack_from(raw, pos)
        pos += _HEADER.size
        arrays = []
        for code, count in (("Q", n_movies + 1), ("I", nnz), ("f", nnz)):
            arr = array(code)
            size = arr.itemsize * count
            if len(raw) < pos + size:
                raise InputError(f"{source}: truncated at byte {len(raw)} (expected {pos + size})")
            arr.frombytes(raw[pos : pos + size])
            if sys.byteorder != "little":
                arr.byteswap()
            arrays.append(arr)
            pos += size
        table = cls(column, keep, l2, scale, weight, *arrays)
        table.check(source)
        return table

    def check(self, source: str = NEIGHBOURS_BIN) -> None:
        """The rows tile the arrays and every target is a movie position."""
        n, nnz = self.n_movies, len(self.targets)
        if len(self.weights) != nnz or self.indptr[0] != 0 or self.indptr[-1] != nnz:
            raise InputError(f"{source}: indptr does not tile {nnz} targets and weights")
        if any(b < a for a, b in zip(self.indptr, self.indptr[1:], strict=False)):
            raise InputError(f"{source}: indptr is not ascending")
        if nnz and max(self.targets) >= n:
            raise InputError(f"{source}: a target movie position is not below {n} movies")
        if not all(map(math.isfinite, self.weights)):  # one NaN would make every score it reaches NaN
            raise InputError(f"{source}: a weight is not a finite number")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"{source}: scale {self.scale}: expected a finite number > 0")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InputError(f"{source}: weight {self.weight}: expected a finite number >= 0")
