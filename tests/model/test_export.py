"""Embedding export: ids, biases and factors land where the model's columns say."""

from __future__ import annotations

import csv
import json
from array import array
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.export import IdLayout, export_embeddings
from fmrec.model.fm import FMParams, raw_scores
from fmrec.serving.lookup import Lookup
from fmrec_cli.main import main as cli_main


def _model(d: int = 9, k: int = 3) -> FMModel:
    rng = np.random.default_rng(0)
    p = FMParams(0.2, rng.normal(size=d).astype(np.float32), rng.normal(size=(d, k)).astype(np.float32))
    return FMModel(p, "binary_classifier")


def test_export_keys_rows_by_id(tmp_path: Path) -> None:
    model = _model()
    # 3 users (ids 10, 20, 30), 4 movies (ids 1, 2, 5, 7) from column 3, then 2 auxiliary columns
    layout = IdLayout([10, 20, 30], [1, 2, 5, 7], 3, ["A", "B, the", "C", "D"])
    summary = export_embeddings(model, layout, tmp_path / "out")
    assert summary["other_feature_columns"] == 2
    users = list(csv.DictReader((tmp_path / "out" / "users.csv").open()))
    items = list(csv.DictReader((tmp_path / "out" / "items.csv").open()))
    assert [u["user_id"] for u in users] == ["10", "20", "30"]
    assert items[1]["title"] == "B, the" and items[3]["movie_id"] == "7"
    assert float(items[3]["bias"]) == pytest.approx(model.params.w[6])
    npz = np.load(tmp_path / "out" / "embeddings.npz")
    np.testing.assert_array_equal(npz["movie_factors"], model.params.V[3:7])
    # the documented score formula reproduces the model for user 20 and movie 5
    x = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 5])), shape=(1, 9), dtype=np.float32)
    expected = raw_scores(model.params, x)[0]
    got = (
        npz["global_bias"]
        + npz["user_bias"][1]
        + npz["movie_bias"][2]
        + npz["user_factors"][1] @ npz["movie_factors"][2]
    )
    assert got == pytest.approx(expected, rel=1e-5)
    assert json.loads((tmp_path / "out" / "export.json").read_text())["num_factors"] == 3


def test_export_rejects_a_mapping_that_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not fit the model's feature_dim 9"):
        export_embeddings(_model(), IdLayout([1, 2, 3], list(range(7)), 3), tmp_path / "o")
    with pytest.raises(InputError, match="n_users"):
        IdLayout.positional(9, 9)


def test_cli_export_positional(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_model_tar(_model(), tmp_path / "model.tar.gz")
    out = tmp_path / "emb"
    assert (
        cli_main(
            [
                "model",
                "export",
                "--model",
                str(tmp_path / "model.tar.gz"),
                "--out",
                str(out),
                "--n-users",
                "4",
            ]
        )
        == 0
    )
    assert "4 users and 5 items" in capsys.readouterr().out
    assert (out / "items.csv").read_text().splitlines()[1].startswith("0,,")
    # the output folder is never overwritten silently; no mapping is an error
    assert (
        cli_main(
            [
                "model",
                "export",
                "--model",
                str(tmp_path / "model.tar.gz"),
                "--out",
                str(out),
                "--n-users",
                "4",
            ]
        )
        == 2
    )
    assert (
        cli_main(["model", "export", "--model", str(tmp_path / "model.tar.gz"), "--out", str(tmp_path / "x")])
        == 2
    )
    assert "--lookup" in capsys.readouterr().err
    assert cli_main(["model", "inspect", "--model", str(tmp_path / "model.tar.gz")]) == 0
    assert '"feature_dim": 9' in capsys.readouterr().out


def test_export_from_lookup_artifacts_with_aux_blocks(tmp_path: Path) -> None:
    lookup = Lookup(
        feature_dim=9,
        user_ids=[10, 20, 30],
        movie_ids=[1, 2, 5, 7],
        titles=["A", "B", "C", "D"],
        genres=[[], [], [], []],
        movie_count=array("I", [1, 1, 1, 1]),
        movie_mean=array("f", [4.0] * 4),
        rated_indptr=array("Q", [0, 0, 0, 0]),
        rated_pos=array("I"),
        aux_blocks=[{"name": "genre", "offset": 7, "size": 2, "labels": ["Drama", "Comedy"]}],
    )
    model = _model()
    export_embeddings(model, IdLayout.from_lookup(lookup), tmp_path / "o")
    rows = list(csv.DictReader((tmp_path / "o" / "features.csv").open()))
    assert [(r["block"], r["label"], r["column"]) for r in rows] == [
        ("genre", "Drama", "7"),
        ("genre", "Comedy", "8"),
    ]
    assert float(rows[1]["f2"]) == pytest.approx(model.params.V[8, 2])
