"""`fmrec recommend`: ask the recommend API (the twin or a deployed stage) and print a table with titles."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fmrec.errors import FmrecError, InputError


def register(sub: Any) -> None:
    parser = sub.add_parser("recommend", help="top-k movies for a user from the recommend API")
    parser.add_argument("--user", type=int, required=True, help="MovieLens user id")
    parser.add_argument("-k", type=int, default=10, help="how many movies (1..100, default 10)")
    parser.add_argument(
        "--api-url", default="http://127.0.0.1:3000", help="API base URL (default the local twin on :3000)"
    )
    parser.add_argument("--genre", default=None, help="only movies of this genre")
    parser.add_argument("--min-score", type=float, default=None, help="drop scores below this")
    parser.add_argument("--include-rated", action="store_true", help="keep movies the user already rated")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.set_defaults(func=_run)


def build_url(args: argparse.Namespace) -> str:
    query: dict[str, str] = {"k": str(args.k)}
    if args.genre:
        query["genre"] = args.genre
    if args.min_score is not None:
        query["min_score"] = repr(args.min_score)
    if args.include_rated:
        query["exclude_rated"] = "false"
    base = args.api_url.rstrip("/")
    return f"{base}/users/{args.user}/recommendations?{urllib.parse.urlencode(query)}"


def fetch(url: str, timeout: float) -> dict[str, Any]:
    """The API's JSON answer; API errors become FmrecError with the API's own message."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            message = exc.reason
        retry = exc.headers.get("Retry-After")
        hint = f" (retry after {retry} s)" if retry else ""
        err = InputError if 400 <= exc.code < 500 else FmrecError
        raise err(f"{url}: HTTP {exc.code}: {message}{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FmrecError(f"{url}: cannot reach the API ({reason}); is `fmrec serve api` running?") from exc


def format_table(doc: dict[str, Any]) -> str:
    items = doc.get("items", [])
    lines = [
        f"user {doc.get('userId')}  model {doc.get('modelVersion')}  path {doc.get('servingPath')}  "
        f"candidates {doc.get('candidates')}"
    ]
    width = max([len(str(it["title"])) for it in items] + [5])
    lines.append(f"{'rank':>4}  {'movieId':>7}  {'score':>8}  {'title':<{width}}")
    for it in items:
        lines.append(f"{it['rank']:>4}  {it['movieId']:>7}  {it['score']:>8.4f}  {it['title']:<{width}}")
    if not items:
        lines.append("(no movies matched)")
    return "\n".join(line.rstrip() for line in lines)


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 100:
        raise InputError(f"-k {args.k}: expected 1..100")
    doc = fetch(build_url(args), args.timeout)
    print(json.dumps(doc, indent=2) if args.json else format_table(doc))
    return 0
