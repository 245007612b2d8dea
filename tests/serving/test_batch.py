"""Batch top-k of every user (fmrec.serving.batch, `fmrec recommend --all-users`): the API's answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import InputError
from fmrec.model.artifact import load_model_tar
from fmrec.serving.batch import write_all_users
from fmrec_cli.main import main
from lambdas.recommend.queries import Query
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import USERS, make_model


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("k", "exclude", "genre", "block_cells"),
    [(3, True, None, 4_000_000), (100, False, None, 13), (2, True, "Thriller", 1), (5, True, "crime", 30)],
)
def test_every_users_top_k_is_the_apis_answer(
    world: Any, tmp_path: Path, k: int, exclude: bool, genre: str | None, block_cells: int
) -> None:
    out = tmp_path / "all.jsonl"
    model = load_model_tar(world.model_path)  # the published artifact (w0 is stored as float32)
    n = write_all_users(
        out, model, world.lookup, k, exclude_rated=exclude, genre=genre, block_cells=block_cells
    )
    rows = _read(out)
    assert n == len(rows) == len(USERS) and [r["userId"] for r in rows] == list(USERS)
    api = Recommender(DirStore(world.artifacts), None, fast_path=True)
    for row in rows:
        rec = api.recommend(Query(row["userId"], k=k, exclude_rated=exclude, genre=genre))
        assert [it["movieId"] for it in row["items"]] == [it.movie_id for it in rec.items]
        scores = [it.score for it in rec.items]
        assert [it["score"] for it in row["items"]] == pytest.approx(scores, abs=1e-6)  # API: float32 dot
        assert set(row) == {"userId", "items"} and all(set(it) == {"movieId", "score"} for it in row["items"])


def test_an_interrupted_run_leaves_no_output_and_no_temporary_file(world: Any, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "all.jsonl"
    out.write_text("the previous run's file\n")
    seen: list[int] = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_all_users(out, world.model, world.lookup, 3, block_cells=12 * 2, progress=interrupt)
    assert seen == [2, 2]  # two blocks of two users each were written to the temporary file, then Ctrl-C
    assert out.read_text() == "the previous run's file\n"
    assert sorted(p.name for p in folder.iterdir()) == ["all.jsonl"]


def test_mismatched_model_and_lookup_and_unknown_genre_are_input_errors(world: Any, tmp_path: Path) -> None:
    other = make_model(world.lookup.feature_dim + 1)
    out = tmp_path / "out" / "x.jsonl"
    with pytest.raises(InputError, match="feature_dim"):
        write_all_users(out, other, world.lookup, 3)
    with pytest.raises(InputError, match="genre: no movie of the lookup has 'Bollywood'"):
        write_all_users(out, world.model, world.lookup, 3, genre="Bollywood")
    assert not list(out.parent.iterdir())


def test_cli_all_users_from_the_serving_artifacts(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "recs.jsonl"
    args = ["recommend", "--all-users", "--out", str(out), "-k", "4", "--artifacts", str(world.artifacts)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"wrote the top 4 of {len(USERS)} users" in captured.out
    assert "recommend:" in captured.err and "user/s" in captured.err  # the progress bar
    rows = _read(out)
    same = tmp_path / "same.jsonl"
    write_all_users(same, load_model_tar(world.model_path), world.lookup, 4)
    assert rows == _read(same)
    lookup = world.root / "lookup-v1"
    model = world.model_path
    args = ["recommend", "--all-users", "--out", str(same), "--model", str(model), "--lookup", str(lookup)]
    assert main([*args, "-k", "4", "--no-progress"]) == 0
    assert _read(same) == rows


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--all-users needs --out"),
        (["--out", "o.jsonl"], "needs --artifacts DIR, or --model TAR and --lookup DIR"),
        (["--out", "o.jsonl", "--artifacts", "a", "--model", "m"], "not both"),
        (["--out", "o.jsonl", "--artifacts", "a", "--json"], "--json apply to --user only"),
    ],
)
def test_cli_all_users_argument_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", "--all-users", *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_user_and_batch_options_do_not_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--user", "1", "--out", "x.jsonl"]) == 2
    assert "apply to --all-users only" in capsys.readouterr().err
