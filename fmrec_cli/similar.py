"""`fmrec similar`: the movies most similar to one movie, from the recommend API (the twin or a stage)."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from fmrec.errors import InputError
from fmrec_cli.recommend import add_client_arguments, fetch, items_table


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "similar",
        help="the k movies most similar to a movie, from the recommend API",
        description=(
            "GET /movies/{movieId}/similar: movies ranked by the cosine similarity of the served model's "
            "movie factor vectors (docs/api.md)."
        ),
    )
    parser.add_argument("--movie", type=int, required=True, help="MovieLens movie id")
    parser.add_argument("-k", type=int, default=10, help="how many movies (1..100, default 10)")
    parser.add_argument("--genre", default=None, help="only movies of this genre")
    add_client_arguments(parser)
    parser.set_defaults(func=_run)


def build_url(args: argparse.Namespace) -> str:
    query: dict[str, str] = {"k": str(args.k)}
    if args.genre:
        query["genre"] = args.genre
    base = args.api_url.rstrip("/")
    return f"{base}/movies/{args.movie}/similar?{urllib.parse.urlencode(query)}"


def format_table(doc: dict[str, Any]) -> str:
    header = (
        f"movie {doc.get('movieId')} {doc.get('title')}  model {doc.get('modelVersion')}  "
        f"similarity {doc.get('similarity')}  candidates {doc.get('candidates')}"
    )
    return items_table(header, doc.get("items", []))


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 100:
        raise InputError(f"-k {args.k}: expected 1..100")
    doc = fetch(build_url(args), args.timeout)
    print(json.dumps(doc, indent=2) if args.json else format_table(doc))
    return 0
