"""Voxel <-> point conversion on torch tensors, on whatever device the tensors live.

The same conversion as :mod:`pcdata.geometry.voxels`, for training and sampling loops that hold
showers on a GPU: give CUDA tensors and everything runs there. Results equal the numpy
functions' bit for bit (points in voxel order, float32 energies unchanged, coinciding hits summed
in float64 and rounded once).

torch is imported lazily so that ``pcdata.geometry`` imports without it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .calo import CaloGeometry, get_geometry

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["voxels_to_points_torch", "points_to_voxels_torch"]


@functools.lru_cache(maxsize=32)
def _tables(geometry: CaloGeometry, device: str):
    # Geometry tables copied to a device once per (geometry, device): a sampling loop calls the
    # conversion every batch and should not pay a host-to-device copy each time.
    import torch

    # torch.tensor copies: the geometry's numpy tables are read-only and must stay shared.
    return (
        torch.tensor(geometry.voxel_cells, dtype=torch.float32, device=device),
        torch.tensor(geometry.layer_offsets, device=device),
        torch.tensor(geometry.n_r, device=device),
        torch.tensor(geometry.n_alpha, dtype=torch.int64, device=device),
    )


def voxels_to_points_torch(
    showers: "torch.Tensor", geometry: CaloGeometry | str, *, threshold: float | None = None
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Hits of a batch of showers as flat points and offsets, on the showers' device.

    Args:
        showers: ``[N, n_voxels]`` voxel energies (MeV).
        geometry: a :class:`CaloGeometry` or its name.
        threshold: drop hits with energy below this (MeV); default keep every non-zero voxel.

    Returns:
        ``(points, offsets)``: float32 ``[n_points, 4]`` = ``(layer, alpha_bin, r_bin, energy)``
        and int64 ``[N + 1]``, equal to ``voxels_to_clouds(...).points`` and ``.offsets``.

    Raises:
        ValueError: ``showers`` does not have the geometry's number of voxels.
    """
    import torch

    geometry = get_geometry(geometry)
    if showers.ndim != 2 or showers.shape[1] != geometry.n_voxels:
        raise ValueError(
            f"showers must have shape [N, {geometry.n_voxels}] for geometry {geometry.name}, got {list(showers.shape)}"
        )
    cells, _, _, _ = _tables(geometry, str(showers.device))
    keep = showers != 0
    if threshold is not None:
        keep &= showers >= threshold
    rows, cols = torch.nonzero(keep, as_tuple=True)  # row-major, like numpy.nonzero
    points = torch.empty((rows.numel(), 4), dtype=torch.float32, device=showers.device)
    points[:, :3] = cells[cols]
    points[:, 3] = showers[rows, cols].to(torch.float32)
    offsets = torch.zeros(len(showers) + 1, dtype=torch.int64, device=showers.device)
    offsets[1:] = torch.cumsum(keep.sum(dim=1), dim=0)
    return points, offsets


def points_to_voxels_torch(
    points: "torch.Tensor", offsets: "torch.Tensor", geometry: CaloGeometry | str
) -> "torch.Tensor":
    """Voxel energies of clouds given as flat points and offsets; hits in one cell are summed.

    Args:
        points: float ``[n_points, 4]`` = ``(layer, alpha_bin, r_bin, energy)``; bins must be whole.
        offsets: int64 ``[N + 1]`` starting at 0.
        geometry: a :class:`CaloGeometry` or its name.

    Returns:
        float32 ``[N, n_voxels]`` on the points' device.

    Raises:
        ValueError: non-integer bins or a cell that is not a voxel.
    """
    import torch

    geometry = get_geometry(geometry)
    device = points.device
    _, layer_offsets, n_r, n_alpha = _tables(geometry, str(device))
    n = len(offsets) - 1
    bins = points[:, :3]
    if not torch.equal(torch.floor(bins), bins):
        raise ValueError("points: layer, alpha_bin and r_bin must hold whole bin numbers")
    layer, alpha, r = bins.to(torch.int64).unbind(dim=1)
    ok = (layer >= 0) & (layer < geometry.n_layers)
    lay = torch.where(ok, layer, torch.zeros_like(layer))
    ok &= (alpha >= 0) & (alpha < n_alpha[lay]) & (r >= 0) & (r < n_r[lay])
    if not bool(ok.all()):
        raise ValueError(f"points: {int((~ok).sum())} hits lie in cells that are not voxels of geometry {geometry.name}")
    counts = offsets[1:] - offsets[:-1]
    cloud = torch.repeat_interleave(torch.arange(n, device=device), counts)
    flat = cloud * geometry.n_voxels + layer_offsets[layer] + alpha * n_r[layer] + r
    showers = torch.zeros(n * geometry.n_voxels, dtype=torch.float32, device=device)
    energy = points[:, 3]
    if flat.numel() and bool((flat[1:] > flat[:-1]).all()):
        showers[flat] = energy.to(torch.float32)
    elif flat.numel():
        # Same rule as numpy: sum in float64, round once (order-independent for a few hits).
        cells, inverse = torch.unique(flat, return_inverse=True)
        sums = torch.zeros(len(cells), dtype=torch.float64, device=device)
        sums.index_add_(0, inverse, energy.to(torch.float64))
        showers[cells] = sums.to(torch.float32)
    return showers.reshape(n, geometry.n_voxels)
