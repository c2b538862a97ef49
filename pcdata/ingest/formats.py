"""The registry of input formats: what the generic ingest needs to know of each.

A format is registered once, by the module that knows it (``pcdata/ingest/jetnet.py``, ...):
how to open and validate its files into a picklable source (the reader lives in
``pcdata/sources/``), the store those sources make, and its defaults. A new input format is a
reader and one registration; the CLI and :func:`pcdata.ingest.ingest` find it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import IngestError
from ..store.format import ChunkSpec, SplitSpec, StoreMeta

__all__ = ["InputFormat", "FORMATS", "register_format", "get_format"]


@dataclass(frozen=True)
class InputFormat:
    """One input format.

    Attributes:
        name: the registry key (``jetnet``), also the CLI subcommand.
        open: ``open(paths, **params) -> source``: validate every file (metadata only) and return
            a picklable source with ``name``, ``files``, ``rows()`` and ``read(i, start, stop)``.
        template: ``template(source, splits) -> StoreMeta``, the store before data is known.
        rows_per_fragment: ``rows_per_fragment(source) -> int``, the default fragment size.
        chunks: the default chunk layout.
        identity: ``identity(source, params) -> dict``: the format parameters that change the
            store's content, for the resume fingerprint.
    """

    name: str
    open: Callable[..., Any]
    template: Callable[[Any, SplitSpec], StoreMeta]
    rows_per_fragment: Callable[[Any], int]
    chunks: ChunkSpec
    identity: Callable[[Any, dict[str, Any]], dict[str, Any]]


FORMATS: dict[str, InputFormat] = {}


def register_format(fmt: InputFormat) -> InputFormat:
    if fmt.name in FORMATS:
        raise ValueError(f"input format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> InputFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise IngestError(f"format: unknown input format {name!r}, expected one of {', '.join(sorted(FORMATS))}") from None
