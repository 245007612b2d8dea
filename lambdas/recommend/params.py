"""Request parameter validation driven by openapi.json, so the document and the Lambda cannot drift apart."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec.numbers import parse_float, parse_int

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
ROUTE = "/users/{userId}/recommendations"


class ParameterError(InputError):
    """A request parameter is missing or out of range: the API answers 400."""


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str
    required: bool
    schema: Mapping[str, Any]

    def expected(self) -> str:
        s = self.schema
        kind = {"integer": "an integer", "number": "a number", "boolean": "true or false"}.get(
            s.get("type", ""), "a string"
        )
        if "minimum" in s and "maximum" in s:
            return f"{kind} from {s['minimum']} to {s['maximum']}"
        if "enum" in s:
            return "one of " + ", ".join(map(str, s["enum"]))
        if s.get("type") == "string":
            return f"{kind} of {s.get('minLength', 0)} to {s.get('maxLength', 'any')} characters"
        return kind

    def parse(self, raw: str | None) -> Any:
        if raw is None:
            if self.required:
                raise ParameterError(f"{self.name}: required, expected {self.expected()}")
            return self.schema.get("default")
        s = self.schema
        kind = s.get("type")
        value: Any
        if kind in ("integer", "number"):
            try:  # strict: no '0_5', no Unicode digits, no nan/inf (fmrec.numbers)
                value = parse_int(raw) if kind == "integer" else parse_float(raw)
            except ValueError:
                raise self._bad(raw) from None
        elif kind == "boolean":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise self._bad(raw)
            return lowered == "true"
        else:
            value = raw
            if "enum" in s:
                # Matched case-insensitively; the canonical spelling is passed on.
                canonical = {str(e).lower(): e for e in s["enum"]}.get(value.lower())
                if canonical is None:
                    raise self._bad(raw)
                return canonical
            if not s.get("minLength", 0) <= len(value) <= s.get("maxLength", len(value)):
                raise self._bad(raw)
            if "pattern" in s and not re.search(s["pattern"], value):
                raise self._bad(raw)
            return value
        if ("minimum" in s and value < s["minimum"]) or ("maximum" in s and value > s["maximum"]):
            raise self._bad(raw)
        return value

    def _bad(self, raw: str) -> ParameterError:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        return ParameterError(f"{self.name}: expected {self.expected()}, got {shown!r}")


def load_openapi() -> dict[str, Any]:
    with OPENAPI_PATH.open(encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def route_parameters(doc: Mapping[str, Any], route: str = ROUTE, method: str = "get") -> list[Parameter]:
    operation = doc["paths"][route][method]
    return [
        Parameter(p["name"], p["in"], bool(p.get("required", False)), p["schema"])
        for p in operation["parameters"]
    ]


def parse_parameters(
    params: list[Parameter], path: Mapping[str, str] | None, query: Mapping[str, str] | None
) -> dict[str, Any]:
    """Typed values of every declared parameter; unknown query parameters are ignored, as API Gateway does."""
    path = path or {}
    query = query or {}
    return {p.name: p.parse((path if p.location == "path" else query).get(p.name)) for p in params}


def body_schema(doc: Mapping[str, Any], route: str, method: str = "post") -> Mapping[str, Any]:
    """The JSON schema of an operation's request body, its $ref resolved."""
    schema = doc["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"]
    ref = schema.get("$ref", "")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def parse_body(schema: Mapping[str, Any], raw: str | bytes | None) -> dict[str, Any]:
    """A JSON object body checked against `schema` (object of integer arrays, as openapi.json declares them):
    a ParameterError naming the field (`movieIds`, `movieIds[3]`) and what was expected."""
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
        raise ParameterError("body: required, expected a JSON object")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ParameterError("body: expected a JSON object, got text that is not JSON") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"body: expected a JSON object, got {type(doc).__name__}")
    props = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in doc:
            raise ParameterError(f"{name}: required, expected {_expected_array(props[name])}")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(doc) - set(props))
        if extra:
            raise ParameterError(f"{extra[0][:40]}: not a field of this body; expected {', '.join(props)}")
    return {name: _parse_array(name, props[name], doc[name]) for name in props if name in doc}


def _expected_array(s: Mapping[str, Any]) -> str:
    item = s["items"]
    return (
        f"an array of {s.get('minItems', 0)} to {s.get('maxItems', 'any')} integers "
        f"from {item['minimum']} to {item['maximum']}"
    )


def _parse_array(name: str, s: Mapping[str, Any], value: Any) -> list[int]:
    if not isinstance(value, list) or not s.get("minItems", 0) <= len(value) <= s.get("maxItems", len(value)):
        got = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
        raise ParameterError(f"{name}: expected {_expected_array(s)}, got {got}")
    item = s["items"]
    for i, v in enumerate(value):
        if type(v) is not int or not item["minimum"] <= v <= item["maximum"]:
            shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:40] + "..."
            raise ParameterError(
                f"{name}[{i}]: expected an integer from {item['minimum']} to {item['maximum']}, got {shown}"
            )
    return value
