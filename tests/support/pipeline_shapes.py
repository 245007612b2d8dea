"""Pipeline step arguments made checkable against botocore's request shapes (expressions -> sample values)."""

from __future__ import annotations

from typing import Any

SUBSTITUTES = {
    "${ArtifactBucket}": "fmrec-artifacts",
    "${PipelineRoleArn}": "arn:aws:iam::123456789012:role/fmrec",
}


def is_expression(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("Get", "Std:Join", "Std:JsonGet")
    )


def typed(value: Any, shape: Any) -> Any:
    """`value` with every pipeline expression replaced by a value of the type botocore expects there."""
    if is_expression(value):
        samples = {
            "string": "x" * max(1, shape.metadata.get("min", 1)),
            "integer": 1,
            "long": 1,
            "float": 1.0,
            "double": 1.0,
            "boolean": True,
        }
        if shape.type_name == "string" and shape.enum:
            return shape.enum[0]
        assert shape.type_name in samples, f"expression where botocore expects a {shape.type_name}"
        return samples[shape.type_name]
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: typed(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [typed(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: typed(v, shape.value) for k, v in value.items()}
    if isinstance(value, str):
        for placeholder, real in SUBSTITUTES.items():
            value = value.replace(placeholder, real)
    return value
