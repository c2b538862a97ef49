"""Checks on the list of input files that no single file can make."""

from __future__ import annotations

import os
from typing import Sequence

from ..errors import SourceError
from ._remote import is_url

__all__ = ["check_distinct"]


def check_distinct(paths: Sequence[str | os.PathLike]) -> None:
    """Refuse a file given twice (under any spelling): its rows would be stored twice."""
    seen: dict[str, str] = {}
    for p in paths:
        key = str(p) if is_url(p) else os.path.realpath(p)
        if key in seen:
            also = "" if str(p) == seen[key] else f" (as {seen[key]})"
            raise SourceError(f"{p}: given twice{also}; each input file is read once")
        seen[key] = str(p)
