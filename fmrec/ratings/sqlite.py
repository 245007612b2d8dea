"""The embedded ratings store: one SQLite file, safe under several processes (WAL, busy timeout)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from fmrec.errors import InputError
from fmrec.ratings.store import PutResult, Rating, StoreUnavailable, newest_per_movie

DEFAULT_BUSY_SECONDS = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    user_id INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    rating REAL NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID
"""
# The later timestamp wins; on a tie, a different rating (the later arrival) wins; an identical repeat is a
# no-op, so rowcount is 0 and the item counts as ignored (fmrec.ratings.store.wins states the same rule).
_UPSERT = """
INSERT INTO ratings (user_id, movie_id, rating, timestamp) VALUES (?, ?, ?, ?)
ON CONFLICT (user_id, movie_id) DO UPDATE SET rating = excluded.rating, timestamp = excluded.timestamp
WHERE excluded.timestamp > ratings.timestamp
   OR (excluded.timestamp = ratings.timestamp AND excluded.rating != ratings.rating)
"""


class SqliteRatings:
    """A RatingsStore in one SQLite file: one connection per thread, one IMMEDIATE transaction per batch.

    WAL lets readers run beside the one writer, and `busy_seconds` makes a writer wait for another process's
    transaction instead of failing at once (https://www.sqlite.org/wal.html,
    https://www.sqlite.org/c3ref/busy_timeout.html). BEGIN IMMEDIATE takes the write lock before the first
    read, so two processes cannot both read-then-write and deadlock (https://www.sqlite.org/lang_transaction.html).
    synchronous=NORMAL in WAL mode survives a crash of any process; a power loss may undo the last commits
    (https://www.sqlite.org/pragma.html#pragma_synchronous). `max_pages` caps the file (SQLITE_FULL past it).
    """

    def __init__(
        self, path: str | Path, *, busy_seconds: float = DEFAULT_BUSY_SECONDS, max_pages: int | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputError(f"--ratings-db {self.path}: folder {self.path.parent} does not exist")
        self.busy_seconds = busy_seconds
        self.max_pages = max_pages
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connect()  # create the file and table now: a bad path fails at start-up, not on a request

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self.max_pages is not None:
                conn.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable("the ratings store cannot be opened", 5, f"{self.path}: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def put(self, user_id: int, ratings: Sequence[Rating]) -> PutResult:
        batch, dropped = newest_per_movie(user_id, ratings)
        conn = self._connect()
        stored = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for r in batch:
                    stored += conn.execute(_UPSERT, (user_id, r.movie_id, r.rating, r.timestamp)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls some errors (SQLITE_FULL) back by itself
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _unavailable(exc, self.path) from exc
        return PutResult(stored, dropped + len(batch) - stored)

    def get(self, user_id: int) -> list[Rating]:
        try:
            rows = (
                self._connect()
                .execute(
                    "SELECT movie_id, rating, timestamp FROM ratings WHERE user_id = ? ORDER BY movie_id",
                    (user_id,),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise _unavailable(exc, self.path) from exc
        return [Rating(user_id, m, r, t) for m, r, t in rows]

    def scan(self) -> Iterator[Rating]:
        try:
            cursor = self._connect().execute(
                "SELECT user_id, movie_id, rating, timestamp FROM ratings ORDER BY user_id, movie_id"
            )
            for u, m, r, t in cursor:
                yield Rating(u, m, r, t)
        except sqlite3.Error as exc:
            raise _unavailable(exc, self.path) from exc

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM ratings").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _unavailable(exc: sqlite3.Error, path: Path) -> StoreUnavailable:
    # SQLITE_BUSY past the timeout, SQLITE_FULL (disk or max_page_count), an unreadable file: all transient
    # or operator problems, never the caller's; the transaction was rolled back, so nothing is half-stored.
    code = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    full = "FULL" in code
    return StoreUnavailable(
        "the ratings store is full" if full else "the ratings store is unavailable",
        60 if full else 1,
        f"{path}: {code}: {exc}",
    )
