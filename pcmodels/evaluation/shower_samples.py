"""Shower samples for evaluation: a shower store or a CaloChallenge HDF5 file, read in row blocks.

:func:`open_showers` accepts either and gives a :class:`ShowerSample`: its geometry (the store's
``geometry`` attribute, or the file's voxel count: 368 ds1-photons, 533 ds1-pions, 6480 ds2,
40500 ds3), the rows to use and :meth:`ShowerSample.blocks`, which yields ``(incident, voxels)``
for consecutive row blocks of about 64 MiB of float32 voxels. Values are checked as they are read:
a NaN, infinite or negative energy, or a non-positive incident energy, is an
:class:`~pcmodels.errors.EvaluationError` naming the input and the row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pcdata import open_store
from pcdata.geometry.calo import GEOMETRY_NAMES, get_geometry
from pcdata.errors import SourceError
from pcdata.geometry.voxels import POINT_FEATURES, clouds_to_voxels
from pcdata.sources._hdf5 import open_hdf5
from pcdata.sources.calochallenge import default_block_rows

from ..errors import EvaluationError

__all__ = ["ShowerSample", "open_showers", "is_shower_input"]

_BY_VOXELS = {get_geometry(name).n_voxels: name for name in GEOMETRY_NAMES}


def _is_hdf5(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def is_shower_input(path: str | os.PathLike) -> bool:
    """Whether an evaluation input holds showers: a CaloChallenge HDF5 file (an HDF5 file with a
    ``showers`` dataset) or a store of kind ``showers``. Anything else is left to the jet path."""
    path = str(path)
    if os.path.isfile(path):
        if not _is_hdf5(path):
            return False
        import h5py

        try:
            with h5py.File(path, "r") as f:
                return "showers" in f
        except OSError:
            return False
    try:
        return open_store(path).kind == "showers"
    except Exception:  # not a store: the jet path reports it
        return False


@dataclass
class ShowerSample:
    """Rows of one shower input.

    Attributes:
        source: the path or catalog reference given.
        kind: ``store`` or ``file``.
        geometry: the geometry name.
        rows: the row (cloud) numbers used, sorted.
        total: rows the input holds (the split's size for a store split).
    """

    source: str
    kind: str
    geometry: str
    rows: np.ndarray
    total: int
    _store: object = None

    def with_rows(self, rows: np.ndarray) -> "ShowerSample":
        """The same input restricted to ``rows`` (sorted, a subset of :attr:`rows`)."""
        return ShowerSample(self.source, self.kind, self.geometry, np.sort(np.asarray(rows, dtype=np.int64)),
                            self.total, self._store)

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(incident [k], voxels [k, n_voxels] float32)`` for consecutive blocks of :attr:`rows`.

        Raises:
            EvaluationError: a damaged input, or invalid values (the first bad row is named).
        """
        geo = get_geometry(self.geometry)
        block_rows = block_rows or default_block_rows(geo.n_voxels)
        if self.kind == "file":
            # Windows of the file's rows (a random subset of a big file must not make one
            # block span the whole file), keeping the rows asked for.
            starts = np.arange(int(self.rows[0]) // block_rows * block_rows, int(self.rows[-1]) + 1, block_rows)
            cuts = np.searchsorted(self.rows, np.append(starts[1:], int(self.rows[-1]) + 1))
            pieces = np.split(self.rows, cuts[:-1])
        else:
            pieces = [self.rows[lo:lo + block_rows] for lo in range(0, len(self.rows), block_rows)]
        for rows in pieces:
            if not len(rows):
                continue
            inc, voxels = self._read(rows, geo)
            self._check(rows, inc, voxels)
            yield inc, voxels

    def _read(self, rows: np.ndarray, geo) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "file":
            import h5py

            try:
                with h5py.File(self.source, "r") as f:
                    lo, hi = int(rows[0]), int(rows[-1]) + 1
                    # One contiguous slice per window (h5py's point selection is slow), then pick.
                    inc = f["incident_energies"][lo:hi][rows - lo, 0]
                    voxels = f["showers"][lo:hi][rows - lo]
            except (OSError, KeyError, ValueError) as err:
                raise EvaluationError(f"{self.source}: cannot read showers {rows[0]}..{rows[-1]} ({err})") from err
            return inc, voxels.astype(np.float32, copy=False) if voxels.dtype.kind != "f" else voxels
        clouds = self._store.take(rows, fields=["incident_energy"])
        try:
            inc, voxels = clouds_to_voxels(clouds, geo)
        except (ValueError, IndexError) as err:
            raise EvaluationError(f"{self.source}: clouds {rows[0]}..{rows[-1]}: {err}") from err
        return inc.reshape(-1), voxels

    def _check(self, rows: np.ndarray, inc: np.ndarray, voxels: np.ndarray) -> None:
        bad = ~np.isfinite(inc) | (inc <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EvaluationError(f"{self.source}: incident energy of shower {rows[i]} is {float(inc[i])}; "
                                  "expected finite and positive (MeV)")
        for what, bad in (("a non-finite", ~np.isfinite(voxels)), ("a negative", voxels < 0)):
            hit = bad.any(axis=1)
            if hit.any():
                i = int(np.flatnonzero(hit)[0])
                raise EvaluationError(f"{self.source}: shower {rows[i]} has {what} voxel energy")


def open_showers(source: str | os.PathLike, *, split: str | None = None) -> ShowerSample:
    """Open a shower store (all clouds, or one split) or a CaloChallenge file (all rows).

    Raises:
        EvaluationError: a file without the CaloChallenge datasets or with wrong shapes or an
            unknown voxel count; a store that does not hold CaloChallenge showers; an unknown
            split; no showers.
    """
    source = str(source)
    if os.path.isfile(source):
        return _open_file(source)
    store = open_store(source)
    missing = [f for f in POINT_FEATURES if f not in store.point_features]
    if store.kind != "showers" or missing or "incident_energy" not in store.cloud_features:
        raise EvaluationError(f"{store.path}: not a CaloChallenge shower store (kind {store.kind}, point features "
                              f"{', '.join(store.point_features)}); expected {', '.join(POINT_FEATURES)} and the "
                              "field incident_energy")
    geometry = store.meta.attrs.get("geometry")
    if geometry not in GEOMETRY_NAMES:
        raise EvaluationError(f"{store.path}: the store records no CaloChallenge geometry (attrs.geometry = "
                              f"{geometry!r}); expected one of {', '.join(GEOMETRY_NAMES)}")
    try:
        rows = store.indices(split)
    except KeyError as err:
        raise EvaluationError(str(err.args[0])) from err
    if not len(rows):
        raise EvaluationError(f"{store.path}: no showers" + (f" in split {split!r}" if split else ""))
    return ShowerSample(str(store.path), "store", geometry, np.sort(rows), len(rows), store)


def _open_file(path: str) -> ShowerSample:
    import h5py

    try:
        f = open_hdf5(path)  # one-line reasons: missing, a directory, empty, truncated, not HDF5
    except SourceError as err:
        raise EvaluationError(str(err)) from err
    with f:
        for key in ("incident_energies", "showers"):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise EvaluationError(f"{path}: no dataset {key!r} (found: {', '.join(sorted(f.keys())) or 'none'})")
        inc, sh = f["incident_energies"], f["showers"]
        if sh.ndim != 2:
            raise EvaluationError(f"{path}: showers must be [N, n_voxels], found shape {list(sh.shape)}")
        if inc.shape not in ((sh.shape[0], 1), (sh.shape[0],)):
            raise EvaluationError(f"{path}: incident_energies has shape {list(inc.shape)}, expected "
                                  f"[{sh.shape[0]}, 1] for {sh.shape[0]} showers")
        for key, ds in (("incident_energies", inc), ("showers", sh)):
            if ds.dtype.kind not in "fiu":
                raise EvaluationError(f"{path}: {key} must be numeric, found {ds.dtype}")
        n, n_voxels = sh.shape
    if n_voxels not in _BY_VOXELS:
        known = ", ".join(f"{v} ({k})" for v, k in _BY_VOXELS.items())
        raise EvaluationError(f"{path}: showers have {n_voxels} voxels, which is no CaloChallenge geometry ({known})")
    if n == 0:
        raise EvaluationError(f"{path}: holds no showers")
    return ShowerSample(path, "file", _BY_VOXELS[n_voxels], np.arange(n), n)


def describe(sample: ShowerSample) -> dict:
    """JSON description of a sample for the report."""
    return {"source": sample.source, "kind": sample.kind, "num_showers": int(len(sample.rows)),
            "available": int(sample.total)}

