"""Load benchmark: `python benchmarks/load.py [options]`, the same as `bandit-router bench load`.

Needs wrk (Debian/Ubuntu: apt-get install wrk) and the [bench] extra.
"""

import sys

from bandit_router.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "load", *sys.argv[1:]]))
