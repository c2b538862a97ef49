"""The CaloChallenge HDF5 layout: validate, read in row blocks, write.

Layout (Fast Calorimeter Simulation Challenge 2022, datasets 1-3):

- ``incident_energies`` ``[N, 1]`` (MeV). The official evaluator requires the trailing 1.
- ``showers`` ``[N, n_voxels]`` (MeV), columns in the geometry's voxel order (radius fastest,
  then angle, then layer; see :mod:`pcdata.geometry.calo`). Both gzip-compressed.

A dataset 3 file is 50k x 40500 float32, about 8 GB: it is only ever read in row blocks
(:func:`read_calochallenge_block`), sized by :func:`default_block_rows`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import atomic_path
from ..clouds import Clouds
from ._hdf5 import damaged_hdf5, open_hdf5
from ._inputs import check_distinct
from ..errors import SourceError
from ..geometry.calo import GEOMETRY_NAMES, CaloGeometry, get_geometry
from ..geometry.voxels import voxels_to_clouds

__all__ = [
    "CaloChallengeFile",
    "CaloChallengeSource",
    "inspect_calochallenge_file",
    "read_calochallenge_block",
    "default_block_rows",
    "CaloChallengeWriter",
    "write_calochallenge_hdf5",
]

_KEYS = ("incident_energies", "showers")


def default_block_rows(n_voxels: int, target_bytes: int = 64 << 20) -> int:
    """Rows per read block so that one block of float32 showers is about ``target_bytes``
    (64 MiB by default: ~400 rows of dataset 3, ~2600 of dataset 2)."""
    return max(1, int(target_bytes) // (4 * max(1, int(n_voxels))))


@dataclass(frozen=True)
class CaloChallengeFile:
    """A validated CaloChallenge file: its path, geometry, number of showers and size in bytes."""

    path: str
    geometry: str
    n_showers: int
    n_voxels: int
    size: int


def _matching_geometries(n_voxels: int) -> str:
    names = [n for n in GEOMETRY_NAMES if get_geometry(n).n_voxels == n_voxels]
    return f" (matches {', '.join(names)})" if names else ""


def inspect_calochallenge_file(path: str | os.PathLike, geometry: CaloGeometry | str) -> CaloChallengeFile:
    """Check a file's keys, shapes and dtypes against a geometry (metadata only, no values).

    Args:
        path: the HDF5 file.
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2``, ``ds3`` or a :class:`CaloGeometry`.

    Raises:
        SourceError: missing, empty, not HDF5 or truncated file; missing dataset; wrong shape
            (including ``incident_energies`` of shape ``(N,)`` instead of ``(N, 1)``); a voxel
            count that is not the geometry's; datasets of different lengths; no showers.
    """
    path = str(path)
    geo = get_geometry(geometry)
    with open_hdf5(path) as f, damaged_hdf5(path, "the layout"):
        for key in _KEYS:
            if key not in f:
                raise SourceError(f"{path}: missing dataset {key!r} (found: {', '.join(sorted(f.keys())) or 'none'})")
        inc, sh = f["incident_energies"], f["showers"]
        if inc.ndim == 1:
            raise SourceError(
                f"{path}: incident_energies has shape ({inc.shape[0]},) instead of ({inc.shape[0]}, 1); "
                "the CaloChallenge layout (and its evaluator) needs [N, 1]"
            )
        if inc.ndim != 2 or inc.shape[1] != 1:
            raise SourceError(f"{path}: incident_energies must have shape [N, 1], found {list(inc.shape)}")
        if sh.ndim != 2:
            raise SourceError(f"{path}: showers must have shape [N, n_voxels], found {list(sh.shape)}")
        if sh.shape[1] != geo.n_voxels:
            raise SourceError(
                f"{path}: showers have {sh.shape[1]} voxels but geometry {geo.name} has {geo.n_voxels}"
                f"{_matching_geometries(sh.shape[1])}"
            )
        if inc.shape[0] != sh.shape[0]:
            raise SourceError(f"{path}: incident_energies has {inc.shape[0]} rows but showers has {sh.shape[0]}")
        if sh.shape[0] == 0:
            raise SourceError(f"{path}: holds no showers")
        for key, ds in (("incident_energies", inc), ("showers", sh)):
            if ds.dtype.kind not in "fiu":
                raise SourceError(f"{path}: {key} must be numeric, found {ds.dtype}")
        n = int(sh.shape[0])
    return CaloChallengeFile(path=path, geometry=geo.name, n_showers=n, n_voxels=geo.n_voxels, size=os.path.getsize(path))


def read_calochallenge_block(
    file: CaloChallengeFile, start: int, stop: int, *, threshold: float | None = None
) -> Clouds:
    """Read showers ``start:stop`` (only those rows), check their values, convert to hit clouds.

    Args:
        file: from :func:`inspect_calochallenge_file`.
        start, stop: the row range; keep it to :func:`default_block_rows` rows or so.
        threshold: drop hits below this energy (MeV); default keep every non-zero voxel.

    Returns:
        :class:`Clouds` as :func:`pcdata.geometry.voxels.voxels_to_clouds` makes them.

    Raises:
        SourceError: negative or non-finite energies (first bad row quoted), or a read failure.
    """
    path = file.path
    start, stop = max(0, int(start)), min(int(stop), file.n_showers)
    stop = max(stop, start)
    try:
        with open_hdf5(path) as f:
            inc = f["incident_energies"][start:stop]
            showers = f["showers"][start:stop]
    except SourceError:
        raise
    except Exception as err:  # h5py raises OSError/KeyError/ValueError for damaged files
        raise SourceError(f"{path}: cannot read showers {start}:{stop} ({type(err).__name__}: {err})") from err

    if showers.dtype != np.float32:
        # Stores hold float32 energies: check the values stored, so a float64 energy too small for
        # float32 does not become a hit of energy 0, nor a huge one an inf (no numpy warning).
        with np.errstate(over="ignore", invalid="ignore"):
            showers = showers.astype(np.float32)
    inc = inc.reshape(len(inc))
    bad = ~np.isfinite(inc) | (inc <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SourceError(f"{path}: incident_energies must be finite and positive (row {start + i} has {inc[i]!r})")
    bad = ~np.isfinite(showers).all(axis=1)
    if bad.any():
        raise SourceError(f"{path}: showers have non-finite energies (first at row {start + int(np.flatnonzero(bad)[0])})")
    bad = (showers < 0).any(axis=1)
    if bad.any():
        raise SourceError(f"{path}: showers have negative energies (first at row {start + int(np.flatnonzero(bad)[0])})")
    return voxels_to_clouds(showers, inc, file.geometry, threshold=threshold)


@dataclass(frozen=True)
class CaloChallengeSource:
    """CaloChallenge files of one geometry as an ingest source: validated up front, read in
    row blocks on workers."""

    files: tuple[CaloChallengeFile, ...]
    geometry: str

    kind = "showers"
    name = "calochallenge"

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], geometry: CaloGeometry | str) -> "CaloChallengeSource":
        """Validate every file's layout (cheap: metadata only) before anything is written."""
        if not paths:
            raise SourceError("no input files given")
        geo = get_geometry(geometry)
        check_distinct(paths)
        return cls(tuple(inspect_calochallenge_file(p, geo) for p in paths), geo.name)

    @property
    def block_rows(self) -> int:
        """Rows per read block for this geometry (see :func:`default_block_rows`)."""
        return default_block_rows(get_geometry(self.geometry).n_voxels)

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        """Showers ``start:stop`` of file ``file_index`` as hit clouds (see :func:`read_calochallenge_block`)."""
        return read_calochallenge_block(self.files[file_index], start, stop)


# -- writing ---------------------------------------------------------------------------------------


class CaloChallengeWriter:
    """Write a CaloChallenge file block by block, atomically: the file appears only when complete.

    Datasets are gzip-compressed like the official files, in chunks of whole rows (about 1 MiB
    each). Blocks may come in any order; write them in row order for byte-identical files.

    Args:
        path: the output file.
        n_showers: total rows.
        n_voxels: voxels per shower (the geometry's ``n_voxels``).
        incident_dtype: dtype of ``incident_energies`` (default float64: the official evaluator's
            classifiers fail on a file whose two datasets are both float32, and float64 holds any
            float32 value exactly).
        compression: an h5py filter name, default ``"gzip"``; None for none.
        attrs: optional file attributes (provenance); the evaluator ignores them.

    Example:
        >>> with CaloChallengeWriter("ds2.hdf5", n_showers=1000, n_voxels=6480) as w:  # doctest: +SKIP
        ...     w.write(0, incident_energies, showers)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_showers: int,
        n_voxels: int,
        incident_dtype: np.dtype | str = np.float64,
        compression: str | None = "gzip",
        attrs: dict | None = None,
    ):
        self.path = Path(path)
        self.n_showers = int(n_showers)
        self.n_voxels = int(n_voxels)
        self.incident_dtype = np.dtype(incident_dtype)
        self.compression = compression
        self.attrs = dict(attrs or {})
        self._stack = contextlib.ExitStack()
        self._written = 0

    def __enter__(self) -> "CaloChallengeWriter":
        import h5py

        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(h5py.File(tmp, "w"))
        self._file.attrs.update(self.attrs)
        rows = max(1, min(self.n_showers, (1 << 20) // (4 * max(1, self.n_voxels))))
        opts = dict(compression=self.compression) if self.compression else {}
        chunked = self.n_showers > 0
        self._inc = self._file.create_dataset(
            "incident_energies", shape=(self.n_showers, 1), dtype=self.incident_dtype,
            chunks=(max(1, min(self.n_showers, 65536)), 1) if chunked else None, **opts,
        )
        self._showers = self._file.create_dataset(
            "showers", shape=(self.n_showers, self.n_voxels), dtype="f4",
            chunks=(rows, self.n_voxels) if chunked else None, **opts,
        )
        return self

    def write(self, start: int, incident_energies: np.ndarray, showers: np.ndarray) -> None:
        """Write showers ``start:start+len(showers)``; incident energies as ``[n]`` or ``[n, 1]``.

        Raises:
            ValueError: shapes that disagree, or rows outside ``0..n_showers``.
        """
        showers = np.asarray(showers)
        inc = np.asarray(incident_energies).reshape(-1, 1)
        stop = start + len(showers)
        if showers.ndim != 2 or showers.shape[1] != self.n_voxels or len(inc) != len(showers):
            raise ValueError(
                f"{self.path}: block must be [n, {self.n_voxels}] showers with n incident energies, "
                f"got {list(showers.shape)} and {len(inc)}"
            )
        if start < 0 or stop > self.n_showers:
            raise ValueError(f"{self.path}: rows {start}:{stop} outside 0:{self.n_showers}")
        self._inc[start:stop] = inc.astype(self.incident_dtype, copy=False)
        self._showers[start:stop] = showers.astype(np.float32, copy=False)
        self._written += stop - start

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._written != self.n_showers:
            exc = ValueError(f"{self.path}: wrote {self._written} of {self.n_showers} showers")
            self._stack.__exit__(type(exc), exc, None)
            raise exc
        self._stack.__exit__(exc_type, exc, tb)


def write_calochallenge_hdf5(
    path: str | os.PathLike, incident_energies: np.ndarray, showers: np.ndarray, *, compression: str | None = "gzip"
) -> None:
    """Write whole arrays as one CaloChallenge file (atomically).

    ``incident_energies`` (``[N]`` or ``[N, 1]``) is stored as float64 (no value is rounded, and
    the official evaluator's classifiers need one float64 dataset); ``showers`` as float32.
    """
    inc = np.asarray(incident_energies)
    with CaloChallengeWriter(path, n_showers=len(showers), n_voxels=np.shape(showers)[1], compression=compression) as w:
        w.write(0, inc, showers)
