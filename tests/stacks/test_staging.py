"""Asset staging without Docker: the import closure, exact file sets and content addressing."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.staging import StagingError, folder_digest, local_closure, stage, stage_python


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.sub import b\nimport json\n",
            "pkg/sub/__init__.py": "from . import c\n",
            "pkg/sub/b.py": "from ..errors import Oops\n",
            "pkg/sub/c.py": "def f():\n    import numpy\n    from pkg import lazy\n",
            "pkg/lazy.py": "",
            "pkg/errors.py": "class Oops(Exception): ...\n",
            "pkg/unused.py": "",
            "entry.py": "from pkg.a import thing\nimport boto3\n",
        },
    )
    return tmp_path


def test_closure_follows_absolute_relative_and_lazy_imports(repo: Path) -> None:
    files = local_closure([repo / "entry.py"], root=repo, packages=("pkg",))
    assert [p.as_posix() for p in files] == [
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/errors.py",
        "pkg/lazy.py",
        "pkg/sub/__init__.py",
        "pkg/sub/b.py",
        "pkg/sub/c.py",
    ]  # not pkg/unused.py; third-party numpy/boto3/json stay out


def test_missing_local_module_is_a_clear_error(repo: Path) -> None:
    (repo / "entry.py").write_text("from pkg.gone import x\n")
    with pytest.raises(StagingError, match=r"entry\.py: imports pkg\.gone\.x"):
        local_closure([repo / "entry.py"], root=repo, packages=("pkg",))


def test_unparsable_module_names_file_and_line(repo: Path) -> None:
    (repo / "pkg" / "a.py").write_text("x = 1\ndef broken(:\n")
    with pytest.raises(StagingError, match=r"a\.py:2: cannot parse"):
        local_closure([repo / "entry.py"], root=repo, packages=("pkg",))


def test_stage_copies_exactly_and_replaces_stale_content(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "asset"
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    stage_python(dest, {"entry.py": repo / "entry.py"}, root=repo, packages=("pkg",))
    first = folder_digest(dest)
    assert not list(dest.rglob("__pycache__"))
    assert (dest / "entry.py").read_text() == (repo / "entry.py").read_text()
    (dest / "stale.txt").write_text("left over from an earlier synth")
    stage_python(dest, {"entry.py": repo / "entry.py"}, root=repo, packages=("pkg",))
    assert not (dest / "stale.txt").exists()
    assert folder_digest(dest) == first  # same sources → same content → same CDK asset hash
    (repo / "pkg" / "lazy.py").write_text("CHANGED = True\n")
    stage_python(dest, {"entry.py": repo / "entry.py"}, root=repo, packages=("pkg",))
    assert folder_digest(dest) != first


def test_missing_entry_file(tmp_path: Path) -> None:
    with pytest.raises(StagingError, match="does not exist"):
        stage(tmp_path / "asset", {"x.py": tmp_path / "nope.py"})
