"""The OpenAPI document as a client of one served model sees it: `genre` limited to that model's genres.

The genres depend on the served model (its lookup), so openapi.json cannot enumerate them and a schema-valid
genre may be a 400 (issue 23 item 6). Schema fuzzing judges a 400 for schema-valid input a failure, so it runs
against the document with the model's genres filled in; the free-text genres are tested in
tests/lambdas/recommend/test_genres.py.
"""

from __future__ import annotations

import copy
from typing import Any


def with_model_genres(document: dict[str, Any], lookup: Any) -> dict[str, Any]:
    """A copy of `document` whose `genre` parameters are an enum of the genres of `lookup`'s movies."""
    genres = sorted({g for gs in lookup.genres for g in gs})
    doc = copy.deepcopy(document)
    for item in doc["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if param["name"] == "genre":
                    param["schema"] = {"type": "string", "enum": genres}
    return doc
