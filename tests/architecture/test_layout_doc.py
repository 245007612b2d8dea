"""docs/architecture.md's layout table matches the tree: every source folder and module, nothing gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
SOURCE_ROOTS = ("fmrec", "fmrec_cli", "pipeline", "twins", "lambdas", "stacks")
OTHER_FOLDERS = ("benchmarks", "docs", "tests")
_CELL_PATH = re.compile(r"`([^`]+)`")
_MODULE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*\.py)`")


def layout_rows(text: str) -> dict[str, str]:
    """folder (as written in the first cell, without the trailing /) -> the row's modules cell."""
    try:
        section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    except IndexError:
        raise AssertionError(f"{DOC}: no '## Layout' section") from None
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for folder in _CELL_PATH.findall(cells[0]):
            rows[folder.rstrip("/")] = cells[2]
    return rows


def source_folders(repo: Path) -> dict[str, set[str]]:
    """Every package folder under the source roots -> the modules directly in it (no __init__.py)."""
    folders: dict[str, set[str]] = {}
    for root in SOURCE_ROOTS:
        for init in sorted((repo / root).rglob("__init__.py")):
            if "__pycache__" in init.parts:
                continue
            folder = init.parent
            modules = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
            folders[folder.relative_to(repo).as_posix()] = modules
    return folders


def layout_problems(repo: Path, text: str) -> list[str]:
    rows = layout_rows(text)
    problems = []
    for folder, modules in source_folders(repo).items():
        if folder not in rows:
            problems.append(f"{folder}/: a source folder with no row in the layout table")
            continue
        named = set(_MODULE.findall(rows[folder]))
        problems += [
            f"{folder}/{m}: a module the layout table does not name" for m in sorted(modules - named)
        ]
        problems += [
            f"{folder}/{m}: named in the layout table but not in the tree" for m in sorted(named - modules)
        ]
    for folder in rows:
        if not (repo / folder).is_dir():
            problems.append(f"{folder}/: a layout table row for a folder that does not exist")
    problems += [f"{f}/: no row in the layout table" for f in OTHER_FOLDERS if f not in rows]
    return problems


def test_the_layout_table_matches_the_tree() -> None:
    problems = layout_problems(REPO, DOC.read_text(encoding="utf-8"))
    assert not problems, f"{DOC.relative_to(REPO)} is out of date:\n" + "\n".join(problems)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    for folder in ("fmrec", "fmrec/data", "twins", *OTHER_FOLDERS):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for init in ("fmrec/__init__.py", "fmrec/data/__init__.py", "twins/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "fmrec" / "errors.py").write_text("")
    (tmp_path / "fmrec" / "data" / "readers.py").write_text("")
    return tmp_path


TABLE = """## Layout

| folder | stage | modules | why |
|---|---|---|---|
| `fmrec/` | all | `errors.py` | |
| `fmrec/data/` | source | `readers.py` | |
| `twins/` | all | | |
| `benchmarks/` | | | |
| `docs/` | | | |
| `tests/` | | | |

## Next
"""


def test_a_matching_table_passes(tiny: Path) -> None:
    assert layout_problems(tiny, TABLE) == []


def test_a_new_module_a_gone_module_and_a_new_folder_are_each_reported(tiny: Path) -> None:
    (tiny / "fmrec" / "data" / "synth.py").write_text("")
    (tiny / "fmrec" / "errors.py").unlink()
    (tiny / "fmrec" / "serving").mkdir()
    (tiny / "fmrec" / "serving" / "__init__.py").write_text("")
    assert layout_problems(tiny, TABLE) == [
        "fmrec/errors.py: named in the layout table but not in the tree",
        "fmrec/data/synth.py: a module the layout table does not name",
        "fmrec/serving/: a source folder with no row in the layout table",
    ]


def test_a_row_for_a_missing_folder_is_reported(tiny: Path) -> None:
    table = TABLE.replace("| `twins/` |", "| `twins/` | all | | |\n| `twins/gone/` |")
    assert layout_problems(tiny, table) == [
        "twins/gone/: a layout table row for a folder that does not exist"
    ]
