"""The logical ID and type of every resource (and every output) of both stages are pinned: a refactor of the
stacks that renames one would make CloudFormation replace a deployed resource.

When a change is meant to add, remove or rename resources, regenerate the list and review its diff:

    PYTHONPATH=. .venv/bin/python -m tests.stacks.test_logical_ids

(it synthesizes dev and prod offline, like the session fixture, and rewrites tests/stacks/logical_ids.json).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.cdk import SYNTHS, Assembly, synth_side_by_side

PINNED = Path(__file__).with_name("logical_ids.json")
STAGES = ("dev", "prod")


# CDK suffixes a REST API's deployment with an MD5 of the API's methods and settings on purpose, so that a
# changed API gets a new deployment: that suffix is not pinned (the rest of the ID is).
_DEPLOYMENT = "AWS::ApiGateway::Deployment"
_CONTENT_HASH = re.compile(r"[0-9a-f]{32}$")


def _entry(logical_id: str, kind: str) -> str:
    if kind == _DEPLOYMENT:
        logical_id = _CONTENT_HASH.sub("<content hash>", logical_id)
    return f"{logical_id} {kind}"


def logical_ids(assembly: Assembly) -> dict[str, dict[str, list[str]]]:
    """Stack name -> {"Resources": ["<logical id> <type>", ...], "Outputs": ["<logical id>", ...]}, sorted."""
    return {
        name: {
            "Resources": sorted(_entry(lid, r["Type"]) for lid, r in template["Resources"].items()),
            "Outputs": sorted(template.get("Outputs", {})),
        }
        for name, template in sorted(assembly.templates.items())
    }


def _changes(pinned: dict[str, Any], synthesized: dict[str, Any]) -> list[str]:
    lines = []
    for stack in sorted(set(pinned) | set(synthesized)):
        for section in ("Resources", "Outputs"):
            before = set(pinned.get(stack, {}).get(section, []))
            after = set(synthesized.get(stack, {}).get(section, []))
            lines += [f"{stack} {section}: - {entry}" for entry in sorted(before - after)]
            lines += [f"{stack} {section}: + {entry}" for entry in sorted(after - before)]
    return lines


@pytest.mark.parametrize("stage", STAGES)
def test_logical_ids_are_unchanged(assemblies: dict[str, Assembly], stage: str) -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))[stage]
    changes = _changes(pinned, logical_ids(assemblies[stage]))
    assert not changes, (
        "logical IDs changed (a deployed resource would be replaced); if that is intended, regenerate "
        f"{PINNED.name} as this module's docstring says:\n" + "\n".join(changes)
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fmrec-ids-") as root:
        built = synth_side_by_side([SYNTHS[s] for s in STAGES], Path(root))
        pinned = {stage: logical_ids(built[stage]) for stage in STAGES}
    PINNED.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PINNED}", file=sys.stderr)


if __name__ == "__main__":
    main()
