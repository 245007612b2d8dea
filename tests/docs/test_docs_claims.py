"""Issue 24, "Docs that say what is not so": each claim the issue found false is held to the code here."""

from __future__ import annotations

import re
from pathlib import Path

from fmrec.model.hyperparameters import RECOMMENDED
from lambdas.recommend.params import load_openapi

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _recipe(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return makefile[makefile.index(f"\n{target}:") :].split("\n\n")[0]


def test_readme_says_what_make_test_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    claims = [line for line in readme.splitlines() if line.startswith("make test ")]
    assert claims
    has_format_check = "ruff format --check" in _recipe("test")
    for line in claims:
        assert "ruff check" in line, line
        assert "format" not in line or has_format_check or "make lint" in line, line


def test_no_doc_cites_a_path_outside_the_repository_or_a_person() -> None:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert "/work/" not in text, f"{path.name}: a path outside the repository"
        assert not re.search(r"engineer [A-Z]\b", text), f"{path.name}: names a team member"


def test_tuning_doc_gives_the_recommended_batch_size() -> None:
    text = (ROOT / "docs" / "tuning.md").read_text(encoding="utf-8")
    adopted = text[text.index("**Pipeline defaults, adopted:**") :].split("\n\n")[0]
    sizes = re.findall(r"`MiniBatchSize` (?:from \d+ to )?(\d+)", adopted)
    assert sizes == [RECOMMENDED["mini_batch_size"]], adopted


def test_data_doc_states_the_api_user_id_range_the_api_has() -> None:
    schema = next(
        p["schema"]
        for p in load_openapi()["paths"]["/users/{userId}/recommendations"]["get"]["parameters"]
        if p["name"] == "userId"
    )
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    ids = text[text.index("**Ids.**") :].split("\n\n")[0]
    if schema["maximum"] == 2**63 - 1:
        assert "2^63 − 1" in ids and "cold-start" in ids
    else:
        assert f"{schema['maximum']}" in ids.replace(",", "")


def test_benchmarks_doc_does_not_promise_make_test_in_4_minutes_flat() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "runs all 1,050 in about 4 minutes." not in text
