"""The settings table (fmrec/features/settings.py) is the one place a preprocess default is written."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from fmrec.features.options import PreprocessConfig, build_arg_parser, config_from_args
from fmrec.features.settings import BY_FIELD, DEFAULTS, SETTINGS, markdown_table

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("fmrec", "fmrec_cli", "pipeline", "twins", "lambdas", "stacks", "app.py")
TABLE = "fmrec/features/settings.py"
# Names under which the code carries a table setting (its field, its flag's words, its pipeline parameter's,
# the sampler's and the history block's own names); seed, split, label, shards and predictor_type are left
# out: other concepts (the FM hyperparameters, a random generator) use those names for their own values.
ALIASES = {
    "threshold": "threshold",
    "label_threshold": "threshold",
    "holdout_per_user": "holdout_per_user",
    "max_reject_fraction": "max_reject_fraction",
    "objective": "objective",
    "negatives": "negatives_per_positive",
    "negatives_per_positive": "negatives_per_positive",
    "negative_exponent": "negative_exponent",
    "popularity_exponent": "negative_exponent",
    "exponent": "negative_exponent",
    "positives": "positives",
    "positive_rule": "positives",
    "below_threshold_negatives": "below_threshold_negatives",
    "below_threshold_as_negative": "below_threshold_negatives",
    "history": "history",
    "history_length": "history",
    "cap": "history",
}


def _literal(node: ast.expr | None, name: str) -> bool:
    """A literal default of the setting `name` aliases (of its type: `history: bool = False` is another
    concept than the history length)."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    if name not in ALIASES or not isinstance(node, ast.Constant) or node.value is None:
        return False
    default = BY_FIELD[ALIASES[name]].default
    if isinstance(default, bool) or isinstance(node.value, bool):
        return isinstance(default, bool) and isinstance(node.value, bool)
    return isinstance(node.value, str) == isinstance(default, str)


def written_defaults(path: Path, rel: str) -> list[str]:
    """Each literal default of a setting alias: a parameter, a dataclass field, an argparse flag."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    flags = {s.flag: s.field for s in SETTINGS if s.field in ALIASES}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            out += [f"{rel}:{d.lineno}: {a.arg}" for a, d in pairs if _literal(d, a.arg)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if _literal(node.value, node.target.id):
                out.append(f"{rel}:{node.lineno}: {node.target.id}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            field = flags.get(node.args[0].value)
            out += [
                f"{rel}:{k.lineno}: {node.args[0].value} default"
                for k in node.keywords
                if field and k.arg == "default" and _literal(k.value, field)
            ]
    return out


def source_files(root: Path) -> list[tuple[Path, str]]:
    files = []
    for source in SOURCES:
        top = root / source
        for path in [top] if top.is_file() else sorted(top.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel != TABLE:
                files.append((path, rel))
    return files


def test_no_default_is_written_outside_the_table() -> None:
    found = [hit for path, rel in source_files(REPO) for hit in written_defaults(path, rel)]
    assert not found, "defaults written outside fmrec/features/settings.py:\n" + "\n".join(found)


def test_the_check_catches_each_way_of_writing_a_default(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text(
        "import dataclasses\n"
        "def f(x, history=64, *, objective='rating'): ...\n"
        "@dataclasses.dataclass\nclass C:\n    positives: str = 'all'\n    cap: int = DEFAULTS['history']\n"
        "parser.add_argument('--negatives', type=int, default=4)\n"
        "def g(seed=0, threshold=None, history=False): ...\n",
        encoding="utf-8",
    )
    assert written_defaults(path, "a.py") == [
        "a.py:2: history",
        "a.py:2: objective",
        "a.py:5: positives",
        "a.py:7: --negatives default",
    ]


def test_config_flags_and_table_agree() -> None:
    args = build_arg_parser(argparse.ArgumentParser()).parse_args([])
    cfg = config_from_args(args)
    for s in SETTINGS:
        if s.field == "aux":
            assert cfg.aux == () and s.default == "none"
            continue
        assert getattr(cfg, s.field) == s.default == getattr(PreprocessConfig(), s.field), s.field
    assert DEFAULTS["history"] == 64 and BY_FIELD["positives"].default == "weighted"


def test_docs_table_is_the_generated_one() -> None:
    doc = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "docs/data.md: paste fmrec.features.settings.markdown_table() in place"
