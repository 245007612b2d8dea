"""How every step script is called: `main(base_dir[, argv])`, the same in a container and the local runner."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from fmrec.errors import FmrecError, InputError

# SageMaker Processing mounts inputs and collects outputs here (ProcessingInput/Output LocalPath).
PROCESSING_ROOT = Path("/opt/ml/processing")
StepMain = Callable[..., object]


def call_main(main: StepMain, base_dir: Path, argv: Sequence[str], script: str) -> object:
    """main(base_dir, argv) for a script with arguments; main(base_dir) for one without, which refuses any."""
    if len(inspect.signature(main).parameters) >= 2:
        return main(base_dir, list(argv))
    if argv:
        raise InputError(f"{script} takes no arguments, got {list(argv)}")
    return main(base_dir)


def run_as_script(
    script: str, main: StepMain, prepare: Callable[[list[str]], list[str]] | None = None
) -> NoReturn:
    """The `__main__` of every step script: INFO logging to the job's log, main on /opt/ml/processing with the
    container's arguments, and a failure as one `<script>: error: <message>` line with exit code 2, which
    SageMaker shows as the job's failure. `prepare` completes the arguments in the container (preprocess
    adds its instance's user shard from resourceconfig.json)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        argv = sys.argv[1:] if prepare is None else prepare(sys.argv[1:])
        call_main(main, PROCESSING_ROOT, argv, script)
    except FmrecError as exc:
        print(f"{script}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(0)
