"""One colour per model, derived from its name, the same on the dashboard and in every figure.

Colours come from a colour-blind-safe set (Okabe-Ito, with Paul Tol's muted colours for
more), yellow left out because it does not read on white. A model's first choice is a stable
hash of its name; when two models of one set want the same colour, they are taken in name
order and the later one moves to the next free colour. The hash's salt is chosen so that the
bundled catalog's models never collide (tests/core/test_palette.py holds it), so their colours do
not depend on which other models a picture shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

PALETTE = (
    "#0072B2",  # blue (Okabe-Ito)
    "#E69F00",  # orange (Okabe-Ito)
    "#009E73",  # bluish green (Okabe-Ito)
    "#CC79A7",  # reddish purple (Okabe-Ito)
    "#56B4E9",  # sky blue (Okabe-Ito)
    "#D55E00",  # vermillion (Okabe-Ito)
    "#332288",  # indigo (Tol muted)
    "#999933",  # olive (Tol muted)
    "#882255",  # wine (Tol muted)
    "#117733",  # green (Tol muted)
    "#DDCC77",  # sand (Tol muted)
    "#555555",  # dark grey
)
OTHER = "#BBBBBB"  # "other": whatever is folded together; never a model's colour
SALT = "38"


def first_choice(model: str) -> int:
    """The palette index a model's name hashes to (stable across runs and machines)."""
    digest = hashlib.blake2b(f"{SALT}:{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % len(PALETTE)


def colors(models: Iterable[str]) -> dict[str, str]:
    """Each model's colour, distinct within the set while it has no more models than the
    palette has colours (beyond that colours repeat, still deterministically)."""
    taken: set[int] = set()
    out: dict[str, str] = {}
    for model in sorted(set(models)):
        i = first_choice(model)
        for step in range(len(PALETTE)):
            if (i + step) % len(PALETTE) not in taken:
                i = (i + step) % len(PALETTE)
                break
        taken.add(i)
        if len(taken) == len(PALETTE):
            taken.clear()  # a set larger than the palette: start a second round
        out[model] = PALETTE[i]
    return out
