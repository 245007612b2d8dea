"""docs/pipeline.md's parameter table is the one the tables build, for every parameter of the definition."""

from __future__ import annotations

from pathlib import Path

from pipeline.definition import CDK_ARGUMENTS, get_pipeline
from pipeline.parameters import markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def table() -> str:
    return markdown_table(get_pipeline(region="us-east-1", **CDK_ARGUMENTS)["Parameters"])  # type: ignore[arg-type]


def test_docs_table_is_built_from_the_tables() -> None:
    assert table() in DOC.read_text(encoding="utf-8"), (
        "docs/pipeline.md's parameter table drifted: paste what "
        "`.venv/bin/python -m tests.pipeline.test_parameter_doc` prints"
    )


def test_every_parameter_has_a_row() -> None:
    names = [p["Name"] for p in get_pipeline(region="us-east-1", **CDK_ARGUMENTS)["Parameters"]]  # type: ignore[arg-type]
    rows = [line.split("`")[1] for line in table().splitlines()[2:]]
    assert rows == names


if __name__ == "__main__":
    print(table(), end="")
