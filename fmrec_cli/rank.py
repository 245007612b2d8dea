"""`fmrec rank`: the given movies ordered for one user, from the recommend API (the twin or a stage)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fmrec.errors import InputError
from fmrec_cli.recommend import add_client_arguments, fetch, items_table

MAX_MOVIES = 500  # openapi.json's RankingRequest.movieIds maxItems


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "rank",
        help="order the given movies for a user, from the recommend API",
        description=(
            "POST /users/{userId}/rankings: the movies scored for the user and returned best first, with the "
            "ids the model cannot score (docs/api.md)."
        ),
    )
    parser.add_argument("--user", type=int, required=True, help="MovieLens user id")
    parser.add_argument(
        "--movies", required=True, help="comma-separated MovieLens movie ids, 1 to 500 (e.g. 50,172,181)"
    )
    add_client_arguments(parser)
    parser.set_defaults(func=_run)


def parse_movies(text: str) -> list[int]:
    """`50,172,181` as a list of ids; anything else an InputError naming --movies."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise InputError(f"--movies {text!r}: expected comma-separated movie ids such as 50,172,181")
    ids = [int(p) for p in parts]
    if not 1 <= len(ids) <= MAX_MOVIES:
        raise InputError(f"--movies: expected 1 to {MAX_MOVIES} movie ids, got {len(ids)}")
    return ids


def format_table(doc: dict[str, Any]) -> str:
    header = (
        f"user {doc.get('userId')}  model {doc.get('modelVersion')}  path {doc.get('servingPath')}  "
        f"scored {doc.get('candidates')}"
    )
    table = items_table(header, doc.get("items", []))
    unknown = doc.get("unknownMovieIds") or []
    if unknown:
        table += "\nnot in the model: " + ", ".join(map(str, unknown))
    return table


def _run(args: argparse.Namespace) -> int:
    movies = parse_movies(args.movies)
    url = f"{args.api_url.rstrip('/')}/users/{args.user}/rankings"
    doc = fetch(url, args.timeout, {"movieIds": movies})
    print(json.dumps(doc, indent=2) if args.json else format_table(doc))
    return 0
