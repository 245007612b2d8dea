"""Request parameter validation driven by openapi.json, so the document and the Lambda cannot drift apart."""

from __future__ import annotations

import json
import math
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
    """The JSON schema of an operation's request body, every $ref in it resolved."""

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref:
                return resolve(doc["components"]["schemas"][ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        return node

    schema: Mapping[str, Any] = resolve(
        doc["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"]
    )
    return schema


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN, Infinity and -Infinity by default; JSON (RFC 8259) has no such numbers.
    raise ParameterError(f"body: {name} is not a JSON number; expected finite numbers")


def parse_body(schema: Mapping[str, Any], raw: str | bytes | None) -> dict[str, Any]:
    """A JSON object body checked against `schema` (objects, arrays, integers and numbers with the bounds
    openapi.json declares): the checked document, or a ParameterError naming the field (`movieIds[3]`,
    `ratings[0].rating`, `body.user`) and what was expected. The one checker of every request body."""
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
        raise ParameterError("body: required, expected a JSON object")
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ParameterError):
            raise
        raise ParameterError("body: expected a JSON object, got text that is not JSON") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"body: expected a JSON object, got {type(doc).__name__}")
    checked: dict[str, Any] = _check_object("", schema, doc)
    return checked


def _expected(s: Mapping[str, Any]) -> str:
    kind = s.get("type")
    if kind == "array":
        item = s["items"]
        what = (
            f"integers from {item['minimum']} to {item['maximum']}"
            if item.get("type") == "integer"
            else ("numbers" if item.get("type") == "number" else "objects")
        )
        return f"an array of {s.get('minItems', 0)} to {s.get('maxItems', 'any')} {what}"
    if kind == "object":
        return "an object with " + ", ".join(s.get("properties", {}))
    noun = "an integer" if kind == "integer" else "a number"
    return (
        f"{noun} from {s['minimum']:g} to {s['maximum']:g}"
        if kind == "number"
        else (f"{noun} from {s['minimum']} to {s['maximum']}")
    )


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _check(field: str, s: Mapping[str, Any], value: Any) -> Any:
    kind = s.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise ParameterError(f"{field}: expected {_expected(s)}, got {_shown(value)}")
        return _check_object(field, s, value)
    if kind == "array":
        if not isinstance(value, list) or not s.get("minItems", 0) <= len(value) <= s.get(
            "maxItems", len(value)
        ):
            got = f"{len(value)} items" if isinstance(value, list) else _shown(value)
            raise ParameterError(f"{field}: expected {_expected(s)}, got {got}")
        return [_check(f"{field}[{i}]", s["items"], v) for i, v in enumerate(value)]
    # bool is an int subclass: true must not pass as 1; a number may be an integer, never the reverse
    number = type(value) is int or (kind == "number" and type(value) is float and math.isfinite(value))
    if not number or not s["minimum"] <= value <= s["maximum"]:
        raise ParameterError(f"{field}: expected {_expected(s)}, got {_shown(value)}")
    return float(value) if kind == "number" else value


def _check_object(field: str, s: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    props = s.get("properties", {})
    prefix = f"{field}." if field else ""
    if s.get("additionalProperties") is False:
        extra = sorted(set(doc) - set(props))
        if extra:
            where = "object" if field else "body"
            raise ParameterError(
                f"{field or 'body'}.{extra[0][:40]}: not a field of this {where}; expected {', '.join(props)}"
            )
    for name in s.get("required", ()):
        if name not in doc:
            raise ParameterError(f"{prefix}{name}: required, expected {_expected(props[name])}")
    return {name: _check(f"{prefix}{name}", props[name], doc[name]) for name in props if name in doc}
