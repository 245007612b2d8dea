"""`fmrec data synth --seed` outside its range is a clear error, not numpy's ValueError (issue 23 item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmrec_cli.main import main


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_is_refused_with_the_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: str
) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert f"--seed {seed}: expected a whole number from 0 to {2**64 - 1}" in err
    assert "Traceback" not in err and not out.exists()


def test_the_largest_seed_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = ["--users", "30", "--items", "60", "--ratings", "900", "--seed", str(2**64 - 1)]
    assert main(["data", "synth", "--out", str(out), *args]) == 0
    assert (out / "u.data").is_file()
