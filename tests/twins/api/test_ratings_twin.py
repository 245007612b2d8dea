"""Ratings through the API twin: `fmrec rate`, the SQLite store beside the artifacts, several workers."""

from __future__ import annotations

import json
import random
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fmrec.ratings.sqlite import SqliteRatings
from fmrec_cli.main import main
from tests.support.ratings_world import build_history_world
from twins.api.environment import default_ratings_db
from twins.api.server import start_in_background


def _post(url: str, user: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"ratings": items}).encode()
    request = urllib.request.Request(
        f"{url}/users/{user}/ratings", body, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _get(url: str, user: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/users/{user}/recommendations?k=5", timeout=30) as response:
        return dict(json.loads(response.read()))


def test_fmrec_rate_then_recommend_through_the_twin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_history_world(tmp_path)
    with start_in_background(world.artifacts, None, fast_path=True) as server:
        assert (
            main(["rate", "--user", "2000", "--movie", "50", "--rating", "5", "--api-url", server.url]) == 0
        )
        assert capsys.readouterr().out.strip() == "user 2000: stored 1, ignored 0"
        assert (
            main(["rate", "--user", "2000", "--movie", "77777", "--rating", "4", "--api-url", server.url])
            == 0
        )
        assert "not in the served model yet: 77777" in capsys.readouterr().out
        assert main(["recommend", "--user", "2000", "--json", "--api-url", server.url]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["servingPath"] == "fold_in" and doc["storedRatings"] == 1
        assert (
            main(["rate", "--user", "2000", "--movie", "50", "--rating", "9", "--api-url", server.url]) == 2
        )
        assert "ratings[0].rating" in capsys.readouterr().err
    db = default_ratings_db(world.artifacts)
    assert db == tmp_path / "ratings.db"  # beside the artifacts folder
    out = tmp_path / "export"
    assert main(["ratings", "export", "--ratings-db", str(db), "--out", str(out)]) == 0
    lines = (out / "ratings.csv").read_text().splitlines()
    assert lines[0] == "userId,movieId,rating,timestamp" and len(lines) == 3
    assert lines[1].startswith("2000,50,5,")


@pytest.mark.slow
def test_no_lost_writes_across_worker_processes(tmp_path: Path) -> None:
    """8 clients x 60 posts on overlapping (user, movie) keys through 2 worker processes sharing one SQLite
    file: every key stored once, with the latest timestamp posted for it (benchmarks/bench_fold_in.py runs
    the issue's 16 x 1,000)."""
    world = build_history_world(tmp_path)
    db = tmp_path / "shared.db"
    latest: dict[tuple[int, int], tuple[int, float]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    server = start_in_background(
        world.artifacts, None, fast_path=True, process=True, workers=2, ratings_db=db
    )

    def client(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                user, movie = rng.randint(1000, 1003), rng.choice((1, 2, 3, 50, 100, 424242))
                ts, rating = rng.randint(1, 10**6), rng.choice((0.5, 1.0, 2.5, 4.0, 5.0))
                _post(server.url, user, [{"movieId": movie, "rating": rating, "timestamp": ts}])
                with lock:
                    old = latest.get((user, movie))
                    if old is None or ts > old[0]:
                        latest[(user, movie)] = (ts, rating)
                    elif ts == old[0] and old[1] != rating:
                        latest[(user, movie)] = (ts, -1.0)  # a tie: either arrival may be the later one
                if movie != 424242:  # a movie the model knows: folded in at once, whichever worker answers
                    assert _get(server.url, user)["servingPath"] == "fold_in"
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert not errors, errors[0]
    store = SqliteRatings(db)
    stored = {(r.user_id, r.movie_id): (r.timestamp, r.rating) for r in store.scan()}
    assert len(list(store.scan())) == len(stored) == len(latest)
    for key, (ts, rating) in latest.items():
        assert stored[key][0] == ts
        assert rating == -1.0 or stored[key][1] == rating
