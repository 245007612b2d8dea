"""The import contract (docs/architecture.md "Import rules"), checked over the source's and the tests' AST."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The source the contract covers: each package folder and the CDK app.
SOURCES = ("fmrec", "fmrec_cli", "pipeline", "twins", "lambdas", "stacks", "app.py")
# The tests follow the rule on function-local imports only: they may import anything.
TESTS = ("tests",)
LOCAL_REASON = re.compile(r"#\s*local import:\s*\S")


@dataclass(frozen=True)
class Rule:
    """Modules in `units` may import project modules only of the units in `allowed`."""

    name: str
    units: tuple[str, ...]
    allowed: tuple[str, ...]


# Top to bottom: fmrec_cli → twins, pipeline → lambdas → fmrec, with stacks/app.py beside the CLI. A unit is a
# top-level package, except that pipeline.steps (run in Processing containers) and each Lambda's own folder
# (deployed alone) are units of their own. "app" is app.py; `lambdas` alone is the package's __init__.
RULES = (
    Rule(
        "fmrec is the library: it imports none of pipeline, twins, lambdas, stacks, fmrec_cli",
        ("fmrec",),
        ("fmrec",),
    ),
    Rule(
        "a Lambda imports only fmrec and its own package (each handler folder is deployed on its own)",
        ("lambdas.recommend",),
        ("fmrec", "lambdas", "lambdas.recommend"),
    ),
    Rule(
        "a Lambda imports only fmrec and its own package (each handler folder is deployed on its own)",
        ("lambdas.deployer",),
        ("fmrec", "lambdas", "lambdas.deployer"),
    ),
    Rule(
        "pipeline/steps run in Processing containers: they import only fmrec and pipeline.steps",
        ("pipeline.steps",),
        ("fmrec", "pipeline.steps"),
    ),
    Rule(
        "the pipeline definition imports only fmrec and pipeline",
        ("pipeline",),
        ("fmrec", "pipeline", "pipeline.steps"),
    ),
    Rule(
        "twins import only fmrec, lambdas, twins and pipeline.steps (the Processing twin runs the steps)",
        ("twins",),
        ("fmrec", "lambdas", "lambdas.recommend", "lambdas.deployer", "twins", "pipeline.steps"),
    ),
    Rule(
        "the CDK code (stacks, app.py) imports only fmrec (config), pipeline (definition) and stacks",
        ("stacks", "app"),
        ("fmrec", "pipeline", "stacks"),
    ),
    Rule(
        "fmrec_cli is the top: it imports anything but stacks and app.py",
        ("fmrec_cli",),
        (
            "fmrec",
            "fmrec_cli",
            "pipeline",
            "pipeline.steps",
            "twins",
            "lambdas",
            "lambdas.recommend",
            "lambdas.deployer",
        ),
    ),
)
# Third-party packages only some modules may import, with why.
RESTRICTED_EXTERNAL = {
    "sagemaker": (
        ("pipeline.sdk",),
        "only pipeline/sdk.py imports the SageMaker SDK (quietly, for the definition): never a step, "
        "a Lambda, a twin, the library or the CLI",
    ),
}
PROJECT = ("fmrec", "fmrec_cli", "pipeline", "twins", "lambdas", "stacks", "app")
# import_module(name) / __import__(name) of a name computed at run time: no rule can check where it points.
COMPUTED = "<computed name>"
COMPUTED_RULE = (
    "a module imported by a computed name escapes the contract: import it literally, e.g. in a named "
    "registry (twins/pipeline/entry_points.py maps the step scripts a definition may name)"
)


@dataclass(frozen=True)
class Import:
    path: str  # relative to the root, with /
    line: int
    module: str  # absolute dotted name
    local: bool  # inside a function: runs at call time, not at import time
    reasoned: bool  # carries a `# local import: <reason>` comment


def unit(module: str) -> str | None:
    """The contract's unit of a project module, None for any other (standard library, third party)."""
    parts = module.split(".")
    if parts[0] not in PROJECT:
        return None
    if parts[0] == "pipeline" and parts[1:2] == ["steps"]:
        return "pipeline.steps"
    if parts[0] == "lambdas" and len(parts) > 1:
        return f"lambdas.{parts[1]}"
    return parts[0]


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, rel: Path) -> str:
    if not node.level:
        return node.module or ""
    package = module_name(rel).split(".")
    if rel.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _literal_import(node: ast.Call) -> str | None:
    """The module of importlib.import_module("x") / import_module("x") / __import__("x"), COMPUTED when the
    name is not a literal, None for any other call."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return COMPUTED
    if arg.value.startswith("."):  # relative: resolvable only with a literal package=
        package = next((k.value for k in node.keywords if k.arg == "package"), None)
        if not (isinstance(package, ast.Constant) and isinstance(package.value, str)):
            return COMPUTED
        stripped = arg.value.lstrip(".")
        base = package.value.split(".")[
            : len(package.value.split(".")) - (len(arg.value) - len(stripped) - 1)
        ]
        return ".".join([*base, stripped] if stripped else base)
    return arg.value


def _reasoned(lines: list[str], first: int, last: int, import_lines: set[int]) -> bool:
    """A `# local import: <reason>` comment on the statement's lines or on the line above it (or above the
    run of import statements it belongs to, so one comment covers a block of imports)."""
    if any(LOCAL_REASON.search(lines[n - 1]) for n in range(first, last + 1)):
        return True
    above = first - 1
    while above in import_lines:
        above -= 1
    return above >= 1 and LOCAL_REASON.match(lines[above - 1].strip()) is not None


def file_imports(path: Path, rel: Path) -> Iterator[Import]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(rel))
    lines = text.splitlines()
    found: list[tuple[ast.stmt | ast.expr, str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((node, alias.name, local) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, rel)
            if base:
                found.append((node, base, local))
            # `from pkg import sub` may import the submodule pkg.sub, of another unit than pkg's in
            # `from pipeline import steps`, `from lambdas import recommend` or `from .. import twins`.
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                if alias.name != "*" and (not base or unit(name) != unit(base)):
                    found.append((node, name, local))
        elif isinstance(node, ast.Call) and (module := _literal_import(node)) is not None:
            found.append((node, module, local))
        inner = local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    import_lines = {
        n
        for node, _, _ in found
        if isinstance(node, ast.Import | ast.ImportFrom)
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    for node, module, local in found:
        first, last = node.lineno, node.end_lineno or node.lineno
        yield Import(rel.as_posix(), first, module, local, _reasoned(lines, first, last, import_lines))


def collect(root: Path, folders: tuple[str, ...] = SOURCES) -> list[Import]:
    out: list[Import] = []
    for source in folders:
        top = root / source
        files = [top] if top.is_file() else sorted(top.rglob("*.py")) if top.is_dir() else []
        for path in files:
            rel = path.relative_to(root)
            out.extend(file_imports(path, rel))
    return out


def layering_violations(root: Path) -> list[str]:
    """Every import that breaks RULES or RESTRICTED_EXTERNAL, as 'file:line: what [rule]'."""
    out: list[str] = []
    for imp in collect(root):
        importer = module_name(Path(imp.path))
        own = unit(importer)
        where = f"{imp.path}:{imp.line}: imports {imp.module}{' (function-local)' if imp.local else ''}"
        if imp.module == COMPUTED:
            out.append(f"{where} [rule: {COMPUTED_RULE}]")
            continue
        target = unit(imp.module)
        if target is not None:
            rule = next((r for r in RULES if own in r.units), None)
            if rule is not None and target not in rule.allowed:
                out.append(f"{where} [rule: {rule.name}]")
        top = imp.module.split(".")[0]
        if top in RESTRICTED_EXTERNAL:
            allowed, why = RESTRICTED_EXTERNAL[top]
            if importer not in allowed:
                out.append(f"{where} [rule: {why}]")
    return sorted(set(out))


def unreasoned_local_imports(root: Path) -> list[str]:
    """Each function-local import in the source or the tests with no `# local import: <reason>` comment, as
    'file:line: what [rule]'."""
    rule = (
        "a function-local import needs a one-line `# local import: <reason>` comment above it "
        "(Lambda cold start, CLI start-up, an optional dependency, a slow import a shared test module "
        "would make every test file pay for); otherwise import at module level"
    )
    found = {
        f"{i.path}:{i.line}: imports {i.module} [rule: {rule}]"
        for i in collect(root, SOURCES + TESTS)
        if i.local and not i.reasoned
    }
    return sorted(found)


def test_imports_point_down() -> None:
    violations = layering_violations(REPO)
    assert not violations, "import contract broken:\n" + "\n".join(violations)


def test_function_local_imports_give_their_reason() -> None:
    violations = unreasoned_local_imports(REPO)
    assert not violations, "unexplained function-local imports:\n" + "\n".join(violations)


# The checker itself, over small synthetic trees: it must catch each kind of break.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"fmrec/a.py": "import twins.api\n"}, "fmrec/a.py:1: imports twins.api [rule: fmrec is the library"),
        (
            {"fmrec/a.py": "def f():\n    from pipeline.definition import get_pipeline\n"},
            "fmrec/a.py:2: imports pipeline.definition (function-local) [rule: fmrec is the library",
        ),
        (
            {"fmrec/a.py": "import importlib\n\ndef f():\n    importlib.import_module('fmrec_cli.main')\n"},
            "fmrec/a.py:4: imports fmrec_cli.main (function-local) [rule: fmrec is the library",
        ),
        ({"fmrec/sub/a.py": "from ... import stacks\n"}, "fmrec/sub/a.py:1: imports stacks [rule: fmrec is"),
        (
            {"lambdas/recommend/a.py": "from lambdas.deployer import handler\n"},
            "lambdas/recommend/a.py:1: imports lambdas.deployer [rule: a Lambda imports only fmrec",
        ),
        (
            {"lambdas/deployer/a.py": "from lambdas import recommend\n"},
            "lambdas/deployer/a.py:1: imports lambdas.recommend [rule: a Lambda imports only fmrec",
        ),
        (
            {"pipeline/steps/a.py": "from pipeline.definition import CDK_ARGUMENTS\n"},
            "pipeline/steps/a.py:1: imports pipeline.definition [rule: pipeline/steps run in Processing",
        ),
        (
            {"pipeline/steps/a.py": "def f():\n    import sagemaker.processing\n"},
            "pipeline/steps/a.py:2: imports sagemaker.processing (function-local) [rule: only pipeline/sdk",
        ),
        (
            {"lambdas/recommend/a.py": "from sagemaker import Session\n"},
            "lambdas/recommend/a.py:1: imports sagemaker [rule: only pipeline/sdk.py imports",
        ),
        (
            {"pipeline/definition.py": "def f():\n    # local import: x\n    import sagemaker\n"},
            "pipeline/definition.py:3: imports sagemaker (function-local) [rule: only pipeline/sdk.py",
        ),
        (
            {"twins/a.py": "import pipeline.definition\n"},
            "twins/a.py:1: imports pipeline.definition [rule: twins",
        ),
        ({"twins/a.py": "import fmrec_cli.main\n"}, "twins/a.py:1: imports fmrec_cli.main [rule: twins"),
        (
            {"pipeline/a.py": "import twins.registry\n"},
            "pipeline/a.py:1: imports twins.registry [rule: the pipe",
        ),
        (
            {"fmrec_cli/a.py": "import stacks.api\n"},
            "fmrec_cli/a.py:1: imports stacks.api [rule: fmrec_cli is",
        ),
        ({"stacks/a.py": "import twins.api\n"}, "stacks/a.py:1: imports twins.api [rule: the CDK code"),
        ({"app.py": "import lambdas.recommend\n"}, "app.py:1: imports lambdas.recommend [rule: the CDK code"),
        (
            {"twins/a.py": "import importlib\n\ndef f(name):\n    return importlib.import_module(name)\n"},
            "twins/a.py:4: imports <computed name> (function-local) [rule: a module imported by a computed",
        ),
        (
            {"fmrec_cli/a.py": "def f(n):\n    return __import__(f'pipeline.steps.{n}')\n"},
            "fmrec_cli/a.py:2: imports <computed name> (function-local) [rule: a module imported by a comp",
        ),
    ],
)
def test_checker_names_file_line_and_rule(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    violations = layering_violations(_tree(tmp_path, files))
    assert len(violations) == 1 and violations[0].startswith(expected), violations


def test_checker_passes_the_allowed_directions(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "fmrec/a.py": "from . import b\nfrom fmrec.errors import InputError\nimport numpy\n",
            "lambdas/recommend/a.py": "from fmrec.serving import lookup\nfrom lambdas.recommend import app\n",
            "pipeline/sdk.py": "import sagemaker.utils as utils\nfrom sagemaker import image_uris\n",
            "pipeline/definition.py": "from fmrec.model import fm\nfrom pipeline.sdk import Pipeline\n",
            "pipeline/steps/a.py": "from fmrec.features import preprocess\n",
            "twins/a.py": "from lambdas.recommend import app\nfrom twins import background\n",
            "stacks/a.py": "from pipeline.definition import get_pipeline\nfrom fmrec import errors\n",
            "app.py": "import stacks.api\nfrom pipeline.definition import image_uris\n",
            "fmrec_cli/a.py": "def f():\n    from twins.api.server import serve  # local import: uvicorn\n",
            "twins/b.py": "from pipeline.steps import preprocess\n",
        },
    )
    assert layering_violations(root) == []


def test_checker_wants_a_reason_for_each_local_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "fmrec/a.py": (
                "import json\n"  # 1: module level
                "def f():\n"
                "    # local import: numpy is slow to import and only this path needs it\n"
                "    import numpy\n"  # 4: reasoned, line above
                "    from scipy import sparse\n"  # 5: same run of imports as line 4
                "\n"
                "    import pandas\n"  # 7: a blank line ends the run
                "    import tqdm  # local import: optional\n"  # 8: same line
                "    # local import:\n"
                "    import re\n"  # 10: a comment without a reason
                "class C:\n"
                "    import os\n"  # 12: class body runs at import: module level
                "    def m(self):\n"
                "        from fmrec import (\n"
                "            errors,  # local import: multi-line statements carry it on any line\n"
                "        )\n"
            )
        },
    )
    found = unreasoned_local_imports(root)
    assert [v.split(": imports")[0] for v in found] == ["fmrec/a.py:10", "fmrec/a.py:7"], found
    assert all("[rule: a function-local import needs" in v for v in found)


def test_the_tests_need_a_reason_for_a_local_import_but_may_import_anything(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "tests/conftest.py": (
                "import sagemaker\n"  # 1: the SDK and any project unit: no layering rule for tests
                "import twins.api\n"
                "def f():\n"
                "    import fmrec_cli.main\n"  # 4: unreasoned
                "    code = 'import numpy'\n"  # 5: code in a string (a subprocess's) is no import
            ),
            "tests/support/a.py": (
                "def f():\n"
                "    # local import: the SageMaker SDK is slow to import\n"
                "    from pipeline.definition import get_pipeline\n"
            ),
            "tests/twins/test_a.py": "def test_x():\n    from twins.api.server import serve\n",
        },
    )
    assert layering_violations(root) == []
    found = unreasoned_local_imports(root)
    assert [v.split(" [rule:")[0] for v in found] == [
        "tests/conftest.py:4: imports fmrec_cli.main",
        "tests/twins/test_a.py:2: imports twins.api.server",
    ], found


def test_the_runner_runs_only_registered_step_scripts() -> None:
    """Every pipeline/steps script with a main() is in the registry, by its own path (and nothing else is)."""
    from twins.pipeline.entry_points import STEP_ENTRY_POINTS  # local import: loads every step script

    steps = REPO / "pipeline" / "steps"
    scripts = {
        f"pipeline/steps/{p.name}"
        for p in steps.glob("*.py")
        if "\ndef main(" in p.read_text(encoding="utf-8")
    }
    assert set(STEP_ENTRY_POINTS) == scripts
    for path, entry in STEP_ENTRY_POINTS.items():
        assert entry.main.__module__ == path.removesuffix(".py").replace("/", "."), path
