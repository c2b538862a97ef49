"""Store -> CaloChallenge HDF5 (``incident_energies`` [N, 1], ``showers`` [N, n_voxels], gzip).

The official layout, as the challenge's evaluator (``evaluate.py`` of the CaloChallenge homepage
repository) reads it: both datasets at the file's top level, the same number of rows, the
geometry's number of voxel columns, and incident energies as a column ``[N, 1]`` (the evaluator
takes ``log10`` of it and concatenates it with the voxels along axis 1).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ExportError
from ..geometry.calo import GEOMETRY_NAMES, GeometryName, get_geometry
from ..geometry.voxels import POINT_FEATURES, clouds_to_voxels
from ..sources.calochallenge import CaloChallengeWriter, default_block_rows
from ..catalog.shared import open_named_store as open_store  # a path or a catalog name
from ..store.reader import Store

__all__ = ["export_calochallenge"]


def export_calochallenge(
    store: Store | str | os.PathLike,
    out: str | os.PathLike,
    *,
    geometry: GeometryName | str | None = None,
    split: str | None = None,
) -> Path:
    """Write a shower store in the CaloChallenge layout, block by block (bounded memory), atomically.

    Each cloud becomes one row of voxel energies (float32); hits that fall in the same cell (as a
    generative model's may) are summed, in float64 rounded once. For a store ingested from
    CaloChallenge files without a threshold, the export equals the input arrays bit for bit.
    ``incident_energies`` is written as float64 whatever the store holds (float32 values exactly):
    the official evaluator's classifiers fail when both datasets of a file are float32.

    Args:
        store: a store or its path (kind ``showers``, point features ``layer, alpha_bin, r_bin,
            energy``, field ``incident_energy``).
        out: the HDF5 file to write; it appears only when complete.
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2`` or ``ds3``; default the store's
            ``attrs["geometry"]``. It must agree with the store's when both are known.
        split: export only this split (default: every cloud, in store order).

    Returns:
        The path written.

    Raises:
        ExportError: not a shower store, no or conflicting geometry, an unknown split, no showers,
            or a hit in a cell that is not a voxel of the geometry.
    """
    store = store if isinstance(store, Store) else open_store(store)
    where = f"{store.path}: calochallenge-hdf5 export"
    missing = [f for f in POINT_FEATURES if f not in store.point_features]
    if store.kind != "showers" or missing:
        raise ExportError(
            f"{where} needs a shower store with point features {', '.join(POINT_FEATURES)}, "
            f"found kind {store.kind} with {', '.join(store.point_features)}"
        )
    if "incident_energy" not in store.cloud_features:
        raise ExportError(f"{where} needs the cloud field incident_energy (has {', '.join(store.cloud_features)})")
    known = store.meta.attrs.get("geometry")
    name = geometry or known
    if name is None:
        raise ExportError(f"{where}: the store records no geometry; give one of {', '.join(GEOMETRY_NAMES)}")
    if name not in GEOMETRY_NAMES:
        raise ExportError(f"{where}: unknown geometry {name!r}, expected one of {', '.join(GEOMETRY_NAMES)}")
    if known is not None and name != known:
        raise ExportError(f"{where}: the store holds {known} showers, not {name}")
    geo = get_geometry(name)
    try:
        indices = store.indices(split)
    except KeyError as err:
        raise ExportError(str(err.args[0])) from err  # "<store>: no split ... (has ...)"
    if not len(indices):
        raise ExportError(f"{where}: no showers to write" + (f" in split {split!r}" if split else ""))

    # The read side's block size: ~64 MiB of float32 voxels per block, whatever the geometry.
    block = default_block_rows(geo.n_voxels)
    attrs = {"geometry": geo.name, "exported_from": str(store.path)}
    with CaloChallengeWriter(out, n_showers=len(indices), n_voxels=geo.n_voxels, attrs=attrs) as writer:
        for lo in range(0, len(indices), block):
            clouds = store.take(indices[lo : lo + block], fields=["incident_energy"])
            try:
                inc, showers = clouds_to_voxels(clouds, geo)
            except (ValueError, IndexError) as err:
                raise ExportError(f"{where}: clouds {lo}..{lo + len(clouds) - 1}: {err}") from err
            writer.write(lo, inc, showers)
    return Path(out)
