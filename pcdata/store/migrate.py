"""Rewriting a store in the current format: ``pcdata migrate OLD NEW``.

Fragment by fragment: each is decoded, rewritten, and its content checksum compared with the one
the old store committed, so a migrated store holds exactly the old clouds (same fields, splits,
statistics, provenance). The target is an ordinary build: locked, resumable, atomic.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import StoreFormatError
from .format import FORMAT_NAME, FORMAT_VERSION, ChunkSpec, Manifests, StoreMeta, fragment_id
from .reader import Store, open_store
from .writer import prepare_store

__all__ = ["migrate_store"]


def _layout_of(store: Store) -> ChunkSpec:
    """The chunking and codec a store was written with (format 1 kept them per array only)."""
    if store.meta.version != 1:
        return store.meta.layout
    if not store.num_fragments:
        return ChunkSpec()
    frag = Path(store._fragment(0).path)
    try:
        points = json.loads((frag / "points" / "zarr.json").read_text())
        offsets = json.loads((frag / "offsets" / "zarr.json").read_text())
        rows = int(points["chunk_grid"]["configuration"]["chunk_shape"][0])
        clouds = int(offsets["chunk_grid"]["configuration"]["chunk_shape"][0])
        blosc = next((c["configuration"] for c in points["codecs"] if c["name"] == "blosc"), None)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise StoreFormatError(f"{store.path}: cannot read the layout of fragment {store.fragments[0].id} ({err})") from err
    if blosc is None:
        return ChunkSpec(rows, clouds, cname="none")
    return ChunkSpec(rows, clouds, blosc["cname"], int(blosc["clevel"]), blosc["shuffle"])


def migrate_store(source: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = False,
                  chunks: ChunkSpec | None = None) -> StoreMeta:
    """Write the complete store ``source`` (format 1 or 2) as a format 2 store at ``target``.

    Args:
        chunks: the new layout (default: the old store's chunking and codec).

    Raises:
        StoreFormatError: a fragment reads back with another checksum than the old store committed.
        StoreExistsError, StoreLockedError: as :func:`~pcdata.store.prepare_store`.
    """
    old = open_store(source)
    if Path(os.path.abspath(source)) == Path(os.path.abspath(target)):
        raise StoreFormatError(f"{target}: migrate into a new path (the old store stays as it is)")
    m = old.meta
    template = replace(m, format=FORMAT_NAME, version=FORMAT_VERSION, layout=chunks or _layout_of(old),
                       expected_fragments=old.num_fragments, status="incomplete", manifests=Manifests(), stats={},
                       fingerprint=f"migrated-from:{m.fingerprint}")
    builder = prepare_store(target, template, overwrite=overwrite)
    with builder:
        writer = builder.writer()
        for k, info in enumerate(old.fragments):
            fid = fragment_id(k)
            if fid in builder.committed:
                continue
            clouds = old._fragment(k).gather(np.arange(info.num_clouds), old.cloud_features, old.point_features)
            new = writer.write(fid, clouds, source=info.source)
            if new.checksum != info.checksum:
                raise StoreFormatError(f"{old.path}: fragment {info.id} reads back with checksum {new.checksum}, "
                                       f"committed as {info.checksum}; run verify on it")
            builder.commit(new)
        return builder.finish(provenance=m.provenance)
