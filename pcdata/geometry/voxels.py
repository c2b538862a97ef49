"""Voxelised showers <-> point clouds of hits, and continuous views of the hits for models.

A shower of ``n_voxels`` energies becomes one cloud with one point per non-zero voxel; the point
features are ``(layer, alpha_bin, r_bin, energy)`` as float32 (bin indices are small integers,
exact in float32; energies keep their float32 bits). Points of a cloud come in voxel order.
Cloud fields:

- ``incident_energy``: the incident energy, value kept exactly: float32 when the input is float32,
  float64 otherwise (a float64 file must not be rounded to float32 on the way in).
- ``num_points``: int32, the number of hits.
- ``energy_sum``: float64, the sum of the kept hits' energies (accumulated in float64, so a
  ds3 shower of ~18k hits does not lose precision).

The way back (:func:`clouds_to_voxels`) is exact: a converted file's voxel energies are
recovered bit for bit. Hits of a generated cloud that land in the same cell are summed
(in float64, rounded once to float32).

Continuous views: :func:`bin_centres` (layer, angle in rad, radius in mm, or layer, x, y) and
:func:`dequantise` (each bin index plus a seeded uniform offset in ``[0, 1)``), whose inverse
:func:`quantise` (floor) gives back the cell exactly; :func:`dequantised_to_physical` maps the
dequantised coordinates to angle and radius inside the cell.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..clouds import Clouds
from .calo import CaloGeometry, get_geometry

__all__ = [
    "POINT_FEATURES",
    "READOUT_THRESHOLD_MEV",
    "voxels_to_clouds",
    "clouds_to_voxels",
    "cells_of",
    "bin_centres",
    "dequantise",
    "quantise",
    "dequantised_to_physical",
]

#: Point feature columns of a shower cloud.
POINT_FEATURES = ("layer", "alpha_bin", "r_bin", "energy")
#: The simulation's readout threshold per voxel: 15.15 keV, in MeV.
READOUT_THRESHOLD_MEV = 0.01515


def _incident_dtype(dtype: np.dtype) -> np.dtype:
    # float32 stays float32 (exact, and what the models want); anything else becomes float64,
    # which holds float64, float16 and any integer energy up to 2**53 exactly.
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def voxels_to_clouds(
    showers: np.ndarray,
    incident_energies: np.ndarray,
    geometry: CaloGeometry | str,
    *,
    threshold: float | None = None,
) -> Clouds:
    """One cloud per shower, one point per non-zero voxel (vectorised over all showers).

    Args:
        showers: ``[N, n_voxels]`` voxel energies (MeV), in the geometry's voxel order. Float32
            energies are kept bit for bit; float64 energies are rounded to float32.
        incident_energies: ``[N]`` or ``[N, 1]`` incident energies (MeV).
        geometry: a :class:`CaloGeometry` or its name.
        threshold: drop hits with energy below this (MeV); default keep every non-zero voxel.

    Returns:
        :class:`Clouds` with point features :data:`POINT_FEATURES` and fields
        ``incident_energy``, ``num_points``, ``energy_sum``.

    Raises:
        ValueError: shapes that do not match each other or the geometry.
    """
    geometry = get_geometry(geometry)
    showers = np.asarray(showers)
    if showers.ndim != 2 or showers.shape[1] != geometry.n_voxels:
        raise ValueError(
            f"showers must have shape [N, {geometry.n_voxels}] for geometry {geometry.name}, got {list(showers.shape)}"
        )
    inc = np.asarray(incident_energies)
    inc = inc.reshape(len(inc), -1) if inc.ndim else inc.reshape(1, 1)
    if inc.shape != (len(showers), 1):
        raise ValueError(f"incident_energies must have shape [{len(showers)}] or [{len(showers)}, 1], got {list(np.shape(incident_energies))}")

    keep = showers != 0
    if threshold is not None:
        keep &= showers >= threshold
    rows, cols = np.nonzero(keep)  # row-major: clouds in order, points in voxel order
    energy = showers[rows, cols].astype(np.float32, copy=False)

    points = np.empty((len(rows), 4), dtype=np.float32)
    points[:, :3] = geometry.voxel_cells[cols]
    points[:, 3] = energy
    counts = np.bincount(rows, minlength=len(showers))
    offsets = np.zeros(len(showers) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Clouds(
        points=points,
        offsets=offsets,
        fields={
            "incident_energy": inc[:, 0].astype(_incident_dtype(inc.dtype)),
            "num_points": counts.astype(np.int32),
            "energy_sum": np.bincount(rows, weights=energy, minlength=len(showers)),
        },
        point_features=POINT_FEATURES,
    )


def _column(clouds: Clouds, name: str) -> np.ndarray:
    names = clouds.point_features or POINT_FEATURES
    if name not in names:
        raise ValueError(f"clouds have no point feature {name!r} (features: {', '.join(names)})")
    return clouds.points[:, names.index(name)]


def cells_of(clouds: Clouds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(layer, alpha_bin, r_bin)`` of every point as int64.

    Raises:
        ValueError: a bin coordinate that is not a whole number (use :func:`quantise` first on
            continuous coordinates).
    """
    out = []
    for name in POINT_FEATURES[:3]:
        v = _column(clouds, name)
        iv = np.floor(v)
        if not np.array_equal(iv, v):
            bad = int(np.flatnonzero(iv != v)[0])
            raise ValueError(f"point feature {name} must hold whole bin numbers, point {bad} has {v[bad]!r}")
        out.append(iv.astype(np.int64))
    return out[0], out[1], out[2]


def clouds_to_voxels(
    clouds: Clouds,
    geometry: CaloGeometry | str,
    *,
    out_of_range: Literal["raise", "drop"] = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """The voxel arrays of shower clouds: the exact inverse of :func:`voxels_to_clouds`.

    Args:
        clouds: clouds with point features ``layer, alpha_bin, r_bin, energy`` and, optionally,
            the field ``incident_energy`` (zeros when missing).
        geometry: a :class:`CaloGeometry` or its name.
        out_of_range: ``"raise"`` (default) on a point whose cell is not a voxel, or ``"drop"``
            such points (for generated clouds that stray outside the grid).

    Returns:
        ``(incident_energies [N, 1], showers [N, n_voxels] float32)``; the incident energies
        keep the field's dtype. Hits in the same cell are summed.

    Raises:
        ValueError: missing features, non-integer bins, or (with ``"raise"``) a point outside.
    """
    geometry = get_geometry(geometry)
    layer, alpha, r = cells_of(clouds)
    energy = _column(clouds, "energy")
    n = len(clouds)
    cloud = np.repeat(np.arange(n, dtype=np.int64), clouds.counts)
    ok = geometry.valid_cell(layer, alpha, r)
    if not ok.all():
        if out_of_range == "raise":
            geometry.cell_to_voxel(layer, alpha, r)  # raises, quoting the first bad cell
        elif out_of_range != "drop":
            raise ValueError(f"out_of_range must be 'raise' or 'drop', got {out_of_range!r}")
        layer, alpha, r, energy, cloud = layer[ok], alpha[ok], r[ok], energy[ok], cloud[ok]
    flat = cloud * geometry.n_voxels + geometry.cell_to_voxel(layer, alpha, r)
    showers = np.zeros((n, geometry.n_voxels), dtype=np.float32)
    target = showers.reshape(-1)
    if flat.size and np.all(flat[1:] > flat[:-1]):
        # The common case (a converted file): strictly increasing, so no two hits share a cell.
        target[flat] = energy
    elif flat.size:
        # Sum coinciding hits in float64 and round once: a single hit comes back bit for bit,
        # and a handful of float32 values spanning < 2**29 add up exactly, so the result does
        # not depend on the summation order (numpy and torch agree).
        cells, inverse = np.unique(flat, return_inverse=True)
        target[cells] = np.bincount(inverse, weights=energy.astype(np.float64), minlength=len(cells)).astype(np.float32)
    inc = clouds.fields.get("incident_energy")
    inc = np.zeros(n, dtype=np.float32) if inc is None else np.asarray(inc)
    return inc.reshape(n, 1), showers


# -- continuous views ---------------------------------------------------------------------------


def bin_centres(clouds: Clouds, geometry: CaloGeometry | str, *, cartesian: bool = False) -> np.ndarray:
    """Each hit at its bin centre: ``(layer, alpha [rad], r [mm])`` or ``(layer, x [mm], y [mm])``.

    The layer stays its integer id (the CaloChallenge files give no depth in mm). Angle
    centres are midpoints of ``linspace(-pi, pi, n_alpha + 1)``; a layer with one angle bin has
    its hits at angle 0, so ``y = 0`` there.

    Returns:
        float32 ``[n_points, 3]``.
    """
    geometry = get_geometry(geometry)
    voxel = geometry.cell_to_voxel(*cells_of(clouds))
    a, r = geometry.voxel_alpha_centre[voxel], geometry.voxel_r_centre[voxel]
    second, third = (r * np.cos(a), r * np.sin(a)) if cartesian else (a, r)
    return np.stack([_column(clouds, "layer").astype(np.float64), second, third], axis=1).astype(np.float32)


def dequantise(clouds: Clouds, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Bin indices plus uniform noise: ``(layer, alpha_bin, r_bin) + U[0, 1)``, seeded.

    Each coordinate lies in ``[k, k + 1)`` in float32 (clamped below ``k + 1`` where float32
    rounding of ``k + u`` would reach it), so :func:`quantise` recovers the cell exactly.

    Args:
        clouds: shower clouds.
        seed: an integer seed or a numpy ``Generator``; the same seed gives the same noise.

    Returns:
        float32 ``[n_points, 3]``.
    """
    cells = np.stack(cells_of(clouds), axis=1).astype(np.float32)
    rng = np.random.default_rng(seed)
    u = rng.random(cells.shape, dtype=np.float32)
    upper = np.nextafter(cells + np.float32(1), np.float32(0))
    return np.minimum(cells + u, upper)


def quantise(coords: np.ndarray) -> np.ndarray:
    """The cells of dequantised coordinates: ``floor``, as int64 ``[n_points, 3]``."""
    return np.floor(np.asarray(coords)).astype(np.int64)


def dequantised_to_physical(
    coords: np.ndarray, geometry: CaloGeometry | str, *, cartesian: bool = False
) -> np.ndarray:
    """Map dequantised coordinates to physical ones inside their cell.

    The fractional part of ``alpha_bin`` and ``r_bin`` is spread linearly across the cell's
    angle and radius range; the layer coordinate is kept as it is.

    Args:
        coords: ``[n, 3]`` from :func:`dequantise` (or a model's output in the same space).
        geometry: a :class:`CaloGeometry` or its name.
        cartesian: return ``(layer, x, y)`` instead of ``(layer, alpha, r)``.

    Returns:
        float64 ``[n, 3]``: ``(layer, alpha [rad], r [mm])`` or ``(layer, x [mm], y [mm])``.

    Raises:
        IndexError: a coordinate whose cell is not a voxel.
    """
    geometry = get_geometry(geometry)
    coords = np.asarray(coords, dtype=np.float64)
    cells = quantise(coords)
    frac = coords - cells
    voxel = geometry.cell_to_voxel(cells[:, 0], cells[:, 1], cells[:, 2])
    a_lo, a_hi = geometry.voxel_alpha_edges[voxel].T
    r_lo, r_hi = geometry.voxel_r_edges[voxel].T
    a = a_lo + frac[:, 1] * (a_hi - a_lo)
    r = r_lo + frac[:, 2] * (r_hi - r_lo)
    if cartesian:
        return np.stack([coords[:, 0], r * np.cos(a), r * np.sin(a)], axis=1)
    return np.stack([coords[:, 0], a, r], axis=1)
