"""`python -m twins.training ROOT`: run one training job over a SageMaker container layout (like /opt/ml)."""

from __future__ import annotations

import logging
import sys

from twins.training.job import run_training_job


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: python -m twins.training ROOT   (ROOT holds input/config and input/data)", file=sys.stderr
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s", stream=sys.stderr
    )
    return run_training_job(argv[0], progress=sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
