"""The CDK app's tests: synths, templates, the pinned logical IDs."""

import os
from pathlib import Path

# The project's Node.js (package.json) first on PATH, as make and npx put it, before anything here imports
# aws_cdk (whose import starts jsii's Node): `python -m tests.stacks.test_logical_ids` then runs on it too,
# without the machine's older Node and its end-of-life banner.
_NODE_BIN = str(Path(__file__).resolve().parents[2] / "node_modules" / ".bin")
if os.environ.get("PATH", "").split(os.pathsep)[0] != _NODE_BIN:
    os.environ["PATH"] = os.pathsep.join([_NODE_BIN, os.environ.get("PATH", "")])
