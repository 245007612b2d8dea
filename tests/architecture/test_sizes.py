"""No module over 400 lines, no function over 80, outside tests, without a reason in docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
SOURCES = ("fmrec", "fmrec_cli", "pipeline", "twins", "lambdas", "stacks", "app.py", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$")


def oversized(root: Path) -> dict[str, int]:
    """`path` (a module) or `path::function` -> its length in lines, for each one over the limits."""
    found: dict[str, int] = {}
    for source in SOURCES:
        top = root / source
        for path in [top] if top.is_file() else sorted(top.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            if (n := len(text.splitlines())) > MAX_MODULE_LINES:
                found[rel] = n
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found[f"{rel}::{node.name}"] = length
    return found


def documented(text: str) -> dict[str, str]:
    """The '## Size exceptions' table: `where` -> its one-line reason."""
    section = (
        text.split("## Size exceptions", 1)[1].split("\n## ", 1)[0] if "## Size exceptions" in text else ""
    )
    return {m.group(1): m.group(3) for line in section.splitlines() if (m := _ROW.match(line))}


def problems(found: dict[str, int], reasons: dict[str, str]) -> list[str]:
    out = [
        f"{w}: {n} lines and no reason in docs/architecture.md"
        for w, n in found.items()
        if not reasons.get(w)
    ]
    out += [f"{w}: listed in docs/architecture.md but within the limits" for w in reasons if w not in found]
    return sorted(out)


def test_every_oversized_module_and_function_has_a_reason() -> None:
    issues = problems(oversized(REPO), documented(DOC.read_text(encoding="utf-8")))
    assert not issues, "size limits (docs/architecture.md, 'Size exceptions'):\n" + "\n".join(issues)


def test_the_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "fmrec").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "fmrec" / "a.py").write_text(
        f"def long():\n{body}\ndef short():\n    pass\n", encoding="utf-8"
    )
    found = oversized(tmp_path)
    assert found == {"fmrec/a.py::long": MAX_FUNCTION_LINES + 1}
    assert problems(found, {}) == [
        f"fmrec/a.py::long: {MAX_FUNCTION_LINES + 1} lines and no reason in docs/architecture.md"
    ]
    assert problems(found, {"fmrec/a.py::long": "a reason"}) == []
    assert problems({}, {"fmrec/a.py::long": "a reason"}) == [
        "fmrec/a.py::long: listed in docs/architecture.md but within the limits"
    ]
