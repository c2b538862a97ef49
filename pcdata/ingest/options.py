"""The options every ingest shares, whatever the input format: one frozen object."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import IngestError
from ..store.format import ChunkSpec, SplitSpec

__all__ = ["IngestOptions"]


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest builds its store (the input format's own parameters are separate).

    Attributes:
        rows_per_fragment: clouds per fragment (default: the format's, about 16-64 MB of input).
        splits: named split fractions and seed (default train/val/test 0.7/0.15/0.15, seed 42).
        chunks: chunking and compression of the fragment arrays (default: the format's: raw
            chunks for jets, lz4 for showers).
        overwrite: replace an existing store (only once the new one is complete).
        progress: show a progress bar on stderr.
        command: the command line recorded in the provenance (default: ``sys.argv``).
        fsync: make fragment data durable before it is committed; ``False`` leaves it to the page
            cache (commits are still fsynced): an interrupted ingest still resumes exactly, but a
            power cut may lose committed fragments, which reads and ``verify`` then report.
    """

    rows_per_fragment: int | None = None
    splits: SplitSpec = SplitSpec()
    chunks: ChunkSpec | None = None
    overwrite: bool = False
    progress: bool = True
    command: str | None = None
    fsync: bool = True

    def __post_init__(self) -> None:
        n = self.rows_per_fragment
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise IngestError(f"rows_per_fragment: must be a whole number >= 1, got {n!r}")

    def resolved(self, *, rows_per_fragment: int, chunks: ChunkSpec) -> "IngestOptions":
        """These options with the format's defaults filled in."""
        return replace(self, rows_per_fragment=self.rows_per_fragment or rows_per_fragment,
                       chunks=self.chunks or chunks)

    def identity(self) -> dict[str, Any]:
        """The options that change the store's content (they enter the resume fingerprint)."""
        return {"rows_per_fragment": self.rows_per_fragment, "splits": self.splits.to_dict(),
                "chunks": None if self.chunks is None else self.chunks.to_dict()}
