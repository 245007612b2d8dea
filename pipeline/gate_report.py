"""The quality gate's decision in words: each check of the run's objective, with its rounded figures."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.definition import GATE_CHECKS

_OPS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanOrEqualTo": (">=", operator.ge),
    "GreaterThan": (">", operator.gt),
    "LessThan": ("<", operator.lt),
    "LessThanOrEqualTo": ("<=", operator.le),
}
_LABELS = {"ranking.ndcg_at_10_lift": "NDCG@10 lift over popularity"}


def _value(doc: Mapping[str, Any], path: str) -> float | None:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) else None


def _shown(path: str, value: float) -> str:
    return f"{value:+.1%}" if path.endswith("_lift") else f"{value:.4f}"


def gate_checks(
    evaluation: Mapping[str, Any], objective: str, parameters: Mapping[str, Any]
) -> list[tuple[bool, str]]:
    """(passed, text) for each gate check of `objective` (GATE_CHECKS, the definition's own table)."""
    out = []
    for check in (c for c in GATE_CHECKS if c.objective == objective):
        left = _value(evaluation, check.left)
        right = (
            float(parameters[check.right])
            if check.right_is_parameter and check.right in parameters
            else _value(evaluation, check.right)
        )
        symbol, op = _OPS[check.op]
        label = _LABELS.get(check.left, check.left.replace(".", " "))
        if left is None or right is None:
            out.append((False, f"{label}: no figure in evaluation.json"))
            continue
        where = check.right if check.right_is_parameter else check.right.replace(".", " ")
        text = f"{label} {_shown(check.left, left)} {symbol} {where} {_shown(check.left, right)}"
        out.append((bool(op(left, right)), text))
    return out


def gate_summary(evaluation: Mapping[str, Any], objective: str, parameters: Mapping[str, Any]) -> str:
    """One line: the decision and each check of the objective's gate, e.g. for a failed ranking gate
    "quality gate (ranking) failed: NDCG@10 lift over popularity -55.1% >= GateNdcgMargin +10.0% (no)"."""
    checks = gate_checks(evaluation, objective, parameters)
    passed = all(ok for ok, _ in checks)
    detail = "; ".join(f"{text} ({'yes' if ok else 'no'})" for ok, text in checks)
    model, popularity = (_value(evaluation, f"ranking.{n}.ndcg_at_10") for n in ("model", "popularity"))
    if objective == "ranking" and model is not None and popularity is not None:
        detail = f"model NDCG@10 {model:.4f} vs popularity {popularity:.4f}: {detail}"
    return f"quality gate ({objective}) {'passed' if passed else 'failed'}: {detail}"
