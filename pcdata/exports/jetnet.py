"""Store -> JetNet HDF5 (``particle_features`` [N, P, 4], ``jet_features`` [N, 4])."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ExportError
from ..sources.jetnet import PARTICLE_FEATURES, JetNetWriter, clouds_to_jetnet
from ..catalog.shared import open_named_store as open_store  # a path or a catalog name
from ..store.reader import Store

__all__ = ["export_jetnet"]


def export_jetnet(
    store: Store | str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_particles: int | None = None,
    split: str | None = None,
    compression: str | None = None,
) -> Path:
    """Write a jet store in the JetNet layout, fragment by fragment (bounded memory), atomically.

    Particles are sorted by descending ptrel, truncated or zero-padded to ``num_particles``, with
    the mask as fourth feature. For a store ingested from JetNet files, export gives the input
    arrays back exactly.

    Args:
        store: a store or its path.
        out: the HDF5 file to write.
        num_particles: P; default the store's source P (``attrs["num_particles"]``) or its longest cloud.
        split: export only this split (default: all clouds).
        compression: HDF5 compression of the datasets (e.g. ``"gzip"``; default none).

    Raises:
        ExportError: the store does not hold jets in relative coordinates.
    """
    store = store if isinstance(store, Store) else open_store(store)
    if tuple(store.point_features[:3]) != PARTICLE_FEATURES:
        raise ExportError(
            f"{store.path}: jetnet-hdf5 export needs point features {', '.join(PARTICLE_FEATURES)}, "
            f"found {', '.join(store.point_features)}"
        )
    if num_particles is None:
        num_particles = int(store.meta.attrs.get("num_particles") or (store.counts.max() if store.num_clouds else 1))
    if num_particles < 1:
        raise ExportError(f"num_particles: must be >= 1, got {num_particles}")
    indices = store.indices(split)
    block = 50_000
    with JetNetWriter(out, n_jets=len(indices), num_particles=num_particles, compression=compression) as writer:
        for lo in range(0, len(indices), block):
            pf, jf = clouds_to_jetnet(store.take(indices[lo : lo + block]), num_particles)
            writer.write(lo, pf, jf)
    return Path(out)
