"""Replay a dataset of real outcomes: `python benchmarks/replay.py PATH [options]`.

The same as `bandit-router bench replay PATH`; see `--help` and benchmarks/README.md.
"""

import sys

from bandit_router.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "replay", *sys.argv[1:]]))
