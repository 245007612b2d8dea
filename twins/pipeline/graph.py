"""The step graph of a pipeline definition: which steps a step needs, from its references and branches."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from fmrec.errors import InputError

_STEP_REF = re.compile(r"^Steps\.([A-Za-z0-9_-]+)")


class DefinitionFormatError(InputError):
    """The pipeline definition JSON is not one this runner can execute."""


def all_steps(definition: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every step, including those nested in a Condition step's IfSteps/ElseSteps."""
    stack = list(definition.get("Steps", []))[::-1]
    while stack:
        step = stack.pop()
        yield step
        if step.get("Type") == "Condition":
            args = step.get("Arguments", {})
            stack.extend(list(args.get("IfSteps", [])) + list(args.get("ElseSteps", [])))


def references(value: Any) -> set[str]:
    """Names of the steps whose properties (or property files) `value` reads."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        get = value.get("Get")
        if isinstance(get, str):
            match = _STEP_REF.match(get)
            if match:
                found.add(match.group(1))
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def dependencies(definition: Mapping[str, Any]) -> dict[str, set[str]]:
    """step name → names it waits for: data references, DependsOn, and the Condition that branches to it."""
    steps = list(all_steps(definition))
    names = [s.get("Name") for s in steps]
    if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        raise DefinitionFormatError(f"pipeline definition: step names must be unique strings, got {names}")
    deps: dict[str, set[str]] = {}
    for step in steps:
        name = step["Name"]
        args = step.get("Arguments", {})
        # A condition reads its conditions; its branches are its successors, not its inputs.
        own = references(args.get("Conditions", [])) if step.get("Type") == "Condition" else references(args)
        deps[name] = own | set(step.get("DependsOn", []))
    for step in steps:
        if step.get("Type") == "Condition":
            args = step.get("Arguments", {})
            for child in list(args.get("IfSteps", [])) + list(args.get("ElseSteps", [])):
                deps[child["Name"]].add(step["Name"])
    for name, needs in deps.items():
        unknown = needs - set(deps)
        if unknown:
            raise DefinitionFormatError(
                f"pipeline definition: step {name} refers to unknown step(s) {sorted(unknown)}"
            )
    return deps


def edges(definition: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(dep, name) for name, needs in dependencies(definition).items() for dep in needs}


def topological_order(definition: Mapping[str, Any]) -> list[str]:
    """Step names in an order that respects dependencies (definition order breaks ties); cycles are errors."""
    deps = dependencies(definition)
    order: list[str] = []
    done: set[str] = set()
    pending = [s["Name"] for s in all_steps(definition)]
    while pending:
        ready = [n for n in pending if deps[n] <= done]
        if not ready:
            raise DefinitionFormatError(f"pipeline definition: dependency cycle among {pending}")
        for name in ready:
            order.append(name)
            done.add(name)
        pending = [n for n in pending if n not in done]
    return order
