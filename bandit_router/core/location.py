"""Where the store lives, named by one URL: a SQLite file (the default) or PostgreSQL.

`sqlite:///router.db` is a path relative to the working directory and
`sqlite:////var/lib/router.db` an absolute one (SQLAlchemy's convention); a bare path means
SQLite too. `postgresql://user@host:5432/db` (or `postgres://`) names a PostgreSQL
database, shared by every replica that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["sqlite", "postgresql"]


_PASSWORD = re.compile(r"(//[^:/@]*):[^@/]*@")


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    return _PASSWORD.sub(r"\1:***@", url)


class BadLocation(ValueError):
    """The storage URL names no backend we have."""


@dataclass(frozen=True, slots=True)
class Location:
    kind: Kind
    target: str  # the SQLite file's path, or the PostgreSQL connection string

    @property
    def shown(self) -> str:
        """For logs and errors: a PostgreSQL password never appears."""
        if self.kind == "sqlite":
            return self.target
        return redacted(self.target)


def locate(url: str) -> Location:
    if not url.strip():
        raise BadLocation("the storage URL is empty")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return Location("postgresql", url)
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise BadLocation(f"{redacted(url)!r}: write sqlite:///relative/path.db or "
                              "sqlite:////absolute/path.db")
        return Location("sqlite", path)
    if scheme:
        raise BadLocation(f"{redacted(url)!r}: the backend must be sqlite:// or "
                          "postgresql://")
    return Location("sqlite", url)
