"""The definitions stay byte-identical to tests/golden/definition/ (python -m tests.golden.definitions)."""

from __future__ import annotations

import pytest

from tests.golden.definitions import CASES, FOLDER, render

pytestmark = pytest.mark.slow  # the SageMaker SDK builds each definition (seconds)


@pytest.mark.parametrize("name", sorted(CASES))
def test_definition_matches_its_golden_file(name: str) -> None:
    golden = (FOLDER / f"{name}.json").read_text(encoding="utf-8")
    built = render(CASES[name]())
    assert built == golden, (
        f"{name}: the definition JSON changed; if meant, run `.venv/bin/python -m tests.golden.definitions` "
        "and review the diff"
    )


def test_every_golden_file_has_a_case() -> None:
    assert {p.stem for p in FOLDER.glob("*.json")} == set(CASES)
