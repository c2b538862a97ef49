"""Store -> Parquet or Arrow IPC file, streamed batch by batch.

Each row is one cloud: one ``large_list<float32>`` column per point feature (all sharing the
cloud's offsets) and one column per cloud field, the layout of :meth:`Store.to_arrow`. The store's
description (kind, coordinates, features with units, provenance) rides along as schema metadata
under ``b"pcdata"`` (JSON). The file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Literal, get_args

from .._io import atomic_path
from ..errors import ExportError
from ..catalog.shared import open_named_store as open_store  # a path or a catalog name
from ..store.reader import Store

__all__ = ["ArrowFormat", "export_arrow"]

ArrowFormat = Literal["parquet", "arrow"]


def _schema_metadata(store: Store, split: str | None) -> dict[bytes, bytes]:
    info = store.describe()
    keep = {k: info[k] for k in ("format", "version", "kind", "coords", "point_features", "cloud_features", "provenance", "attrs")}
    keep["split"] = split
    return {b"pcdata": json.dumps(keep).encode()}


def export_arrow(
    store: Store | str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: ArrowFormat = "parquet",
    split: str | None = None,
    batch_size: int = 65536,
    compression: str | None = "zstd",
) -> Path:
    """Write a store's clouds to a Parquet or Arrow IPC (Feather v2) file, in bounded memory.

    Readable by pyarrow (``pq.read_table``, ``pa.ipc.open_file``), polars (``pl.read_parquet``,
    ``pl.read_ipc``), pandas and DuckDB.

    Args:
        store: a store or its path.
        out: the file to write (replaced atomically if it exists).
        format: ``"parquet"`` (default) or ``"arrow"`` (Arrow IPC file format).
        split: export only this split (default: every cloud).
        batch_size: clouds per record batch / row group (default 65536).
        compression: codec (``"zstd"`` default, ``"lz4"``, None for none).

    Raises:
        ExportError: unknown format or bad batch size.
        KeyError: unknown split.
    """
    if format not in get_args(ArrowFormat):
        raise ExportError(f"unknown export format {format!r} (expected one of {', '.join(get_args(ArrowFormat))})")
    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    store = store if isinstance(store, Store) else open_store(store)
    batches = store.iter_arrow_batches(batch_size, split=split)
    first = next(batches, None)
    # An empty selection still gives a valid file, typed from an empty read.
    schema = first.schema if first is not None else store.take([]).to_arrow().schema
    schema = schema.with_metadata(_schema_metadata(store, split))
    out = Path(out)
    with atomic_path(out) as tmp:
        writer = _open_writer(format, tmp, schema, compression)
        try:
            for batch in itertools.chain([first] if first is not None else [], batches):
                writer.write_batch(batch.replace_schema_metadata(schema.metadata))
        finally:
            writer.close()
    return out


def _open_writer(format: str, path: Path, schema, compression: str | None):
    import pyarrow as pa

    if format == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(path), schema, compression=compression or "none")
    options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
    return pa.ipc.new_file(str(path), schema, options=options)
