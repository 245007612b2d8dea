"""`fmrec rate` (a rating posted to the API) and `fmrec ratings export` (for the next training run)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec_cli.recommend import add_client_arguments, fetch


def register(sub: Any) -> None:
    rate = sub.add_parser(
        "rate",
        help="store a user's rating through the recommend API (used by their next recommendations)",
        description="POST /users/{userId}/ratings with one rating; prints how many were stored or ignored.",
    )
    rate.add_argument("--user", type=int, required=True, help="MovieLens user id (1..2147483647)")
    rate.add_argument("--movie", type=int, required=True, help="MovieLens movie id")
    rate.add_argument("--rating", type=float, required=True, help="0.5 to 5")
    rate.add_argument("--timestamp", type=int, default=None, help="Unix seconds (default: now, at the API)")
    add_client_arguments(rate)
    rate.set_defaults(func=_rate)

    ratings = sub.add_parser("ratings", help="the stored ratings: export them for the next training run")
    rsub = ratings.add_subparsers(dest="ratings_command", metavar="SUBCOMMAND", required=True)
    export = rsub.add_parser(
        "export",
        help="write the stored ratings as a MovieLens ratings.csv",
        description=(
            "Write OUT/ratings.csv (userId,movieId,rating,timestamp, the ml-latest layout) from the SQLite "
            "store (--ratings-db) or a DynamoDB table (--table, with your AWS credentials). Put it at "
            "DATA_DIR/extra-ratings/ and the next preprocess merges it with DATA_DIR's ratings."
        ),
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--ratings-db", metavar="FILE", help="the API twin's SQLite ratings store")
    source.add_argument("--table", metavar="NAME", help="the stage's DynamoDB ratings table")
    export.add_argument("--region", default=None, help="the table's region (default: your AWS config)")
    export.add_argument(
        "--out", required=True, metavar="DIR", help="folder for ratings.csv (written atomically)"
    )
    export.set_defaults(func=_export)


def _rate(args: argparse.Namespace) -> int:
    item: dict[str, Any] = {"movieId": args.movie, "rating": args.rating}
    if args.timestamp is not None:
        item["timestamp"] = args.timestamp
    url = f"{args.api_url.rstrip('/')}/users/{args.user}/ratings"
    doc = fetch(url, args.timeout, {"ratings": [item]}, _check_posted)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    line = f"user {doc['userId']}: stored {doc['stored']}, ignored {doc['ignored']}"
    if doc.get("unknownMovies"):
        line += f"; not in the served model yet: {', '.join(map(str, doc['unknownMovies']))}"
    print(line)
    return 0


def _check_posted(where: str, doc: dict[str, Any]) -> None:
    """The ratings route's answer: userId, stored and ignored integers and an unknownMovies list."""
    bad = [name for name in ("userId", "stored", "ignored") if type(doc.get(name)) is not int]
    if bad or not isinstance(doc.get("unknownMovies"), list):
        raise FmrecError(
            f"{where}: not the ratings route's answer (no valid {', '.join(bad or ['unknownMovies'])})"
        )


def open_store(ratings_db: str | None, table: str | None, region: str | None = None) -> Any:
    """The SQLite store of a file that must exist, or the DynamoDB store of a table."""
    if ratings_db:
        # local import: CLI start-up (the stores load only when a command uses them)
        from fmrec.ratings.sqlite import SqliteRatings

        if not Path(ratings_db).is_file():
            raise InputError(f"--ratings-db {ratings_db}: no such file (the API twin creates it)")
        return SqliteRatings(ratings_db)
    # local import: CLI start-up (boto3 loads only when --table is used)
    import boto3

    # local import: CLI start-up (botocore loads only when --table is used)
    from fmrec.ratings.dynamodb import DynamoRatings

    return DynamoRatings(boto3.client("dynamodb", region_name=region), str(table))


def export_ratings(
    ratings_db: str | None, table: str | None, out: str | Path, region: str | None = None
) -> int:
    # local import: CLI start-up
    from fmrec.ratings.export import write_movielens

    store = open_store(ratings_db, table, region)
    try:
        return write_movielens(store.scan(), out)
    finally:
        store.close()


def _export(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    count = export_ratings(args.ratings_db, args.table, args.out, args.region)
    print(
        json.dumps(
            {
                "out": str(Path(args.out) / "ratings.csv"),
                "ratings": count,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    )
    return 0
