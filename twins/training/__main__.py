"""`python -m twins.training ROOT`: run one training job over a SageMaker container layout (like /opt/ml)."""

from __future__ import annotations

import logging
import sys

from twins.training.job import compile_kernels, run_training_job


def main(argv: list[str]) -> int:
    if argv == ["--compile-kernels"]:  # make setup: compile the kernels into numba's cache (compile_kernels)
        print(f"training kernels compiled and cached in {compile_kernels():.1f} s", file=sys.stderr)
        return 0
    if len(argv) != 1 or argv[0].startswith("--"):
        print(
            "usage: python -m twins.training ROOT   (ROOT holds input/config and input/data)\n"
            "       python -m twins.training --compile-kernels",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s", stream=sys.stderr
    )
    return run_training_job(argv[0], progress=sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
