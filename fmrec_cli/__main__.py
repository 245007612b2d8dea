"""`python -m fmrec_cli`: the `fmrec` command for child processes that cannot rely on the console script."""

import sys

from fmrec_cli.main import main

sys.exit(main())
