"""The rule for the names of models, policies, tasks, bucket levels and tenants.

They travel inside every route_id (signed, base64), in logs, metrics labels and URLs, so
they are short and plain: 1 to 64 characters, letters, digits and ``. _ - : / @ +``,
starting with a letter or a digit. A task or a level is at most 32 characters and has no
``:``, so a bucket name (``task:level``) is at most 65, and the longest route_id (tenant,
policy, bucket and model at their longest) stays under 450 characters, well inside the
512 that `POST /v1/feedback` accepts.
"""

from __future__ import annotations

import re

MAX_NAME = 64
MAX_PART = 32  # a task or a level: the two halves of a bucket name
NAME_CHARS = "letters, digits and . _ - : / @ +"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]*")


def name_problem(name: str, part: bool = False) -> str | None:
    """Why `name` is not a valid name (a phrase to follow the name's key), or None.
    `part`: the name is a task or a level (shorter, and no ':')."""
    max_len = MAX_PART if part else MAX_NAME
    if not name:
        return "must not be empty"
    if len(name) > max_len:
        return f"must be at most {max_len} characters; got {len(name)}"
    if _NAME.fullmatch(name) is None:
        return (f"may hold only {NAME_CHARS}, starting with a letter or a digit; "
                f"got {name!r}")
    if part and ":" in name:
        return f"may not contain ':' (it separates a bucket's task and level); got {name!r}"
    return None
