"""The id -> one-hot column rule: users, movies, aux blocks, history; standard library only (Lambda)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fmrec.errors import InputError

USER = "user"
MOVIE = "movie"
HISTORY = "history"
NEIGHBOURS = "neighbours"


@dataclass(frozen=True)
class ColumnBlock:
    """`size` consecutive columns from `offset`: position p of the block is column offset + p; each carries
    `value` in a row (1 for the one-hot id blocks; an aux block's is preprocess's --aux-value)."""

    name: str
    offset: int
    size: int
    value: float = 1.0

    @property
    def end(self) -> int:
        return self.offset + self.size

    def column(self, pos: int) -> int:
        return self.offset + pos

    def position(self, column: int) -> int | None:
        """The block position of `column`; None when the column lies outside the block."""
        pos = column - self.offset
        return pos if 0 <= pos < self.size else None


@dataclass(frozen=True)
class ColumnLayout:
    """Where each id lands in the FM's feature vector.

    The rule (`build`): the user block first (column = position among the sorted train user ids), the movie
    block after it (column = n_users + position among the sorted train movie ids), then the auxiliary blocks
    in order, then the rated-movie history block (one column per movie position), then the neighbour column
    (one column: the user's item-item score of the row's movie, fmrec.features.neighbours) after everything;
    feature_dim covers them all. A lookup records the offsets it was built with (`from_lookup`).
    """

    users: ColumnBlock
    movies: ColumnBlock
    feature_dim: int
    aux: tuple[ColumnBlock, ...] = ()
    history: ColumnBlock | None = None
    neighbours: ColumnBlock | None = None

    @classmethod
    def build(
        cls,
        n_users: int,
        n_movies: int,
        aux: Iterable[tuple[str, int]] = (),
        history: bool = False,
        aux_value: float = 1.0,
        neighbours: bool = False,
    ) -> ColumnLayout:
        """The layout of `n_users` users, `n_movies` movies, (name, size) aux blocks whose columns carry
        `aux_value`, a history block and the neighbour column."""
        users = ColumnBlock(USER, 0, n_users)
        movies = ColumnBlock(MOVIE, users.end, n_movies)
        blocks: list[ColumnBlock] = []
        end = movies.end
        for name, size in aux:
            blocks.append(ColumnBlock(name, end, size, aux_value))
            end += size
        history_block = ColumnBlock(HISTORY, end, n_movies) if history else None
        end = history_block.end if history_block is not None else end
        neighbour_block = ColumnBlock(NEIGHBOURS, end, 1) if neighbours else None
        dim = neighbour_block.end if neighbour_block is not None else end
        return cls(users, movies, dim, tuple(blocks), history_block, neighbour_block)

    @classmethod
    def from_lookup(
        cls,
        n_users: int,
        n_movies: int,
        feature_dim: int,
        aux_blocks: Sequence[Mapping[str, Any]] = (),
        history_offset: int | None = None,
        neighbour_column: int | None = None,
    ) -> ColumnLayout:
        """The layout a lookup records: its feature_dim, aux blocks ({"name", "offset", "size", "value"}; a
        lookup written before --aux-value has no "value": 1), history offset and neighbour column as written,
        the user and movie blocks by the rule."""
        base = cls.build(n_users, n_movies)
        aux = tuple(
            ColumnBlock(str(b.get("name", "")), int(b["offset"]), int(b["size"]), _value(b.get("value", 1.0)))
            for b in aux_blocks
        )
        history = None if history_offset is None else ColumnBlock(HISTORY, history_offset, n_movies)
        neighbours = None if neighbour_column is None else ColumnBlock(NEIGHBOURS, neighbour_column, 1)
        return cls(base.users, base.movies, feature_dim, aux, history, neighbours)

    # ---- ids -> columns
    @property
    def n_users(self) -> int:
        return self.users.size

    @property
    def n_movies(self) -> int:
        return self.movies.size

    def user_column(self, user_pos: int) -> int:
        return self.users.column(user_pos)

    def movie_column(self, movie_pos: int) -> int:
        return self.movies.column(movie_pos)

    def history_column(self, movie_pos: int) -> int:
        if self.history is None:
            raise InputError("the column layout has no history block")
        return self.history.column(movie_pos)

    # ---- columns -> ids
    @property
    def blocks(self) -> tuple[ColumnBlock, ...]:
        """Every block, in column order."""
        tail = tuple(b for b in (self.history, self.neighbours) if b is not None)
        return (self.users, self.movies, *self.aux, *tail)

    def locate(self, column: int) -> tuple[str, int] | None:
        """(block name, position in the block) of `column`; None for a column no block covers."""
        for block in self.blocks:
            pos = block.position(column)
            if pos is not None:
                return block.name, pos
        return None

    def decode_pair(self, keys: Sequence[int]) -> tuple[int, int]:
        """(user position, movie position) of one instance's keys: exactly one user column and one movie
        column expected (other blocks' columns are ignored)."""
        users = [p for p in map(self.users.position, keys) if p is not None]
        movies = [p for p in map(self.movies.position, keys) if p is not None]
        if len(users) != 1 or len(movies) != 1:
            u, m = self.users, self.movies
            raise InputError(
                f"keys {list(keys)}: expected exactly one user column in [{u.offset}, {u.end}) "
                f"and one movie column in [{m.offset}, {m.end}), found {len(users)} and {len(movies)}"
            )
        return users[0], movies[0]

    def aux_value(self, column: int) -> float:
        """The value an aux column carries in a row (1.0 for a column of no aux block)."""
        for block in self.aux:
            if block.offset <= column < block.end:
                return block.value
        return 1.0

    def problems(self) -> list[str]:
        """What does not fit: the id blocks or the history block past feature_dim."""
        out = []
        if self.feature_dim < self.movies.end:
            out.append(f"feature_dim {self.feature_dim} < {self.n_users} users + {self.n_movies} movies")
        if self.history is not None and not (
            self.movies.end <= self.history.offset and self.history.end <= self.feature_dim
        ):
            out.append(f"history block at {self.history.offset} does not fit feature_dim {self.feature_dim}")
        if self.neighbours is not None:
            taken = [b for b in self.blocks if b is not self.neighbours]
            inside = any(b.offset <= self.neighbours.offset < b.end for b in taken)
            if inside or not self.movies.end <= self.neighbours.offset < self.feature_dim:
                where = f"{self.neighbours.offset} of feature_dim {self.feature_dim}"
                out.append(f"neighbour column {where} is not a free column")
        return out


def _value(raw: Any) -> float:
    """An aux block's recorded value: a finite number > 0 (ValueError otherwise: the lookup reader's)."""
    value = float(raw)
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"aux block value {raw!r}: expected a finite number > 0")
    return value
