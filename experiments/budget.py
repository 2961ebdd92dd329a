"""Budget pacing: a daily budget at half the unconstrained spend, paced through the day.

Target: the paced budget ends within ±5% of its limit in every seed and traffic shape; the
report gives the quality it costs, and what a hard cap without pacing does instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import arguments, config

from bandit_router.bench import pacing


def main() -> None:
    args = arguments(__doc__, steps=4000)
    result = pacing.experiment(config(args.config), args.seeds, args.steps,
                               progress=lambda m: print(m, file=sys.stderr))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pacing.plot(result, out / "budget.png")
    (out / "budget.md").write_text(pacing.markdown(result))
    rows = {shape: d["rows"] for shape, d in result["shapes"].items()}
    (out / "budget.json").write_text(json.dumps({**result, "shapes": rows}, indent=1))
    print((out / "budget.md").read_text())


if __name__ == "__main__":
    main()
