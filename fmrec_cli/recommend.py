"""`fmrec recommend`: a user's top k from the recommend API, or every user's from the model (--all-users)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec.serving.artifacts import CURRENT_KEY, lookup_prefix, model_key, parse_current


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "recommend",
        help="top-k movies for a user from the recommend API, or for every user into a file",
        description=(
            "--user ID asks the recommend API (the twin or a deployed stage) and prints a table. "
            "--all-users --out FILE scores every user locally from a model artifact and its lookup "
            "(--artifacts, or --model and --lookup) and writes JSON Lines "
            '{"userId":..,"items":[{"movieId":..,"score":..},...]}, atomically.'
        ),
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="MovieLens user id (asks the API)")
    who.add_argument("--all-users", action="store_true", help="every user of the lookup, into --out")
    parser.add_argument("-k", type=int, default=10, help="how many movies (1..100, default 10)")
    batch = parser.add_argument_group("--all-users")
    batch.add_argument("--out", metavar="FILE", help="JSON Lines output (written atomically)")
    batch.add_argument(
        "--artifacts",
        metavar="DIR",
        help="serving artifacts (current.json + VERSION/lookup/ + VERSION/model.tar.gz, see docs/api.md)",
    )
    batch.add_argument("--model", metavar="TAR", help="model.tar.gz (with --lookup, instead of --artifacts)")
    batch.add_argument("--lookup", metavar="DIR", help="the lookup folder preprocess wrote for that model")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--genre", default=None, help="only movies of this genre")
    parser.add_argument("--min-score", type=float, default=None, help="drop scores below this")
    parser.add_argument("--include-rated", action="store_true", help="keep movies the user already rated")
    add_client_arguments(parser)
    parser.set_defaults(func=_run)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The API client's flags, shared by `fmrec recommend`, `fmrec rank` and `fmrec similar`."""
    parser.add_argument(
        "--api-url", default="http://127.0.0.1:3000", help="API base URL (default the local twin on :3000)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


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


def fetch(
    url: str,
    timeout: float,
    body: dict[str, Any] | None = None,
    check: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The API's JSON answer (a POST of `body` as JSON when given); API errors become FmrecError with the
    API's own message. `check(where, doc)` refuses an answer of the wrong shape (default: `check_items`)."""
    request = urllib.request.Request(url)
    if body is not None:
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
        )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            doc = _answer(url, response.status, response.headers.get("Content-Type"), response.read())
            (check or check_items)(f"{url}: HTTP {response.status}", doc)
            return doc
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
            message = doc.get("message", exc.reason) if isinstance(doc, dict) else exc.reason
        except ValueError:
            message = exc.reason
        retry = exc.headers.get("Retry-After")
        hint = f" (retry after {retry} s)" if retry else ""
        err = InputError if 400 <= exc.code < 500 else FmrecError
        raise err(f"{url}: HTTP {exc.code}: {message}{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FmrecError(f"{url}: cannot reach the API ({reason}); is `fmrec serve api` running?") from exc


_ITEM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "rank": int,
    "movieId": int,
    "score": (int, float),
    "title": str,
}


def _answer(url: str, status: int, content_type: str | None, body: bytes) -> dict[str, Any]:
    """The body as the API's answer: a JSON object.

    Anything else (an HTML page, a JSON list: --api-url names another server) is an FmrecError saying what
    came back, never a traceback.
    """
    where = f"{url}: HTTP {status}"
    try:
        doc = json.loads(body)
    except ValueError:
        raise FmrecError(
            f"{where}: not JSON ({content_type or 'no content type'}, starts {body[:60]!r}); "
            "does --api-url name the recommend API?"
        ) from None
    if not isinstance(doc, dict):
        raise FmrecError(f"{where}: a JSON {type(doc).__name__}, expected the API's JSON object")
    return doc


def check_items(where: str, doc: dict[str, Any]) -> None:
    """A ranked answer: its items have rank, movieId, score and title (else an FmrecError saying which)."""
    items = doc.get("items")
    if not isinstance(items, list):
        raise FmrecError(f"{where}: the answer has no 'items' list")
    for n, item in enumerate(items, start=1):
        bad = [
            name
            for name, kind in _ITEM_FIELDS.items()
            if not isinstance(item, dict)
            or not isinstance(item.get(name), kind)
            or isinstance(item[name], bool)
        ]
        if bad:
            raise FmrecError(
                f"{where}: item {n} has no valid {', '.join(repr(b) for b in bad)}: {item!r:.200}"
            )


def format_table(doc: dict[str, Any]) -> str:
    header = (
        f"user {doc.get('userId')}  model {doc.get('modelVersion')}  path {doc.get('servingPath')}  "
        f"candidates {doc.get('candidates')}"
    )
    return items_table(header, doc.get("items", []))


def items_table(header: str, items: list[dict[str, Any]]) -> str:
    """An answer's ranked movies (rank, movieId, score, title) under a header line."""
    lines = [header]
    width = max([len(str(it["title"])) for it in items] + [5])
    lines.append(f"{'rank':>4}  {'movieId':>7}  {'score':>8}  {'title':<{width}}")
    for it in items:
        lines.append(f"{it['rank']:>4}  {it['movieId']:>7}  {it['score']:>8.4f}  {it['title']:<{width}}")
    if not items:
        lines.append("(no movies matched)")
    return "\n".join(line.rstrip() for line in lines)


def resolve_model_and_lookup(args: argparse.Namespace) -> tuple[Path, Path]:
    """(model.tar.gz, lookup folder) from --artifacts (the published version) or --model and --lookup."""
    if args.artifacts:
        if args.model or args.lookup:
            raise InputError("give --artifacts, or --model and --lookup, not both")
        root = Path(args.artifacts)
        current = root / CURRENT_KEY
        version = parse_current(current.read_bytes(), str(current)) if current.is_file() else None
        return root / model_key(version), root / lookup_prefix(version)
    if not (args.model and args.lookup):
        raise InputError("--all-users needs --artifacts DIR, or --model TAR and --lookup DIR")
    return Path(args.model), Path(args.lookup)


def run_all_users(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy loads only when this command runs)
    from fmrec.model.artifact import load_model_tar
    from fmrec.serving.batch import write_all_users
    from fmrec.serving.lookup import read_lookup

    if not args.out:
        raise InputError("--all-users needs --out FILE")
    model_path, lookup_dir = resolve_model_and_lookup(args)
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such model artifact")
    model = load_model_tar(model_path)
    lookup = read_lookup(lookup_dir)
    total = len(lookup.user_ids)
    bar: Any = None
    if not args.no_progress:
        # local import: CLI start-up (tqdm loads only when this command runs)
        from tqdm import tqdm

        bar = tqdm(total=total, unit="user", desc="recommend", file=sys.stderr, leave=False)
    try:
        written = write_all_users(
            args.out,
            model,
            lookup,
            args.k,
            exclude_rated=not args.include_rated,
            genre=args.genre,
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote the top {args.k} of {written} users to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 100:
        raise InputError(f"-k {args.k}: expected 1..100")
    if args.all_users:
        if args.min_score is not None or args.json:
            raise InputError("--min-score and --json apply to --user only")
        return run_all_users(args)
    if args.out or args.artifacts or args.model or args.lookup:
        raise InputError("--out, --artifacts, --model and --lookup apply to --all-users only")
    doc = fetch(build_url(args), args.timeout)
    print(json.dumps(doc, indent=2) if args.json else format_table(doc))
    return 0
