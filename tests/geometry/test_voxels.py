"""Tests of pcdata.geometry.voxels and voxels_torch: exact voxel <-> point conversion, views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcdata.clouds import Clouds
from pcdata.geometry.calo import get_geometry
from pcdata.geometry.voxels import (
    POINT_FEATURES,
    READOUT_THRESHOLD_MEV,
    bin_centres,
    clouds_to_voxels,
    dequantise,
    dequantised_to_physical,
    quantise,
    voxels_to_clouds,
)
from pcdata.geometry.voxels_torch import points_to_voxels_torch, voxels_to_points_torch


def sparse_showers(n: int, geometry: str, seed: int = 0, fill: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Float32 showers with awkward values: tiny, huge, subnormal; some rows all zero."""
    g = get_geometry(geometry)
    rng = np.random.default_rng(seed)
    mask = rng.random((n, g.n_voxels)) < fill
    values = rng.lognormal(0.0, 4.0, (n, g.n_voxels)).astype(np.float32)
    showers = np.where(mask, values, np.float32(0))
    showers[0, :3] = [np.float32(1e-40), np.float32(3.4e38), np.float32(0.1)]  # subnormal, near max
    showers[1] = 0  # an empty shower
    energies = (10.0 ** rng.uniform(3, 6, n)).astype(np.float32)
    return energies.reshape(n, 1), showers


@pytest.mark.parametrize("geometry", ["ds1-pions", "ds2"])
def test_round_trip_is_bit_exact(geometry):
    inc, showers = sparse_showers(50, geometry)
    clouds = voxels_to_clouds(showers, inc, geometry)
    assert clouds.point_features == POINT_FEATURES == ("layer", "alpha_bin", "r_bin", "energy")
    assert clouds.points.dtype == np.float32 and len(clouds) == 50
    inc2, showers2 = clouds_to_voxels(clouds, geometry)
    assert showers2.dtype == np.float32 and inc2.shape == (50, 1) and inc2.dtype == np.float32
    np.testing.assert_array_equal(showers2.view(np.uint32), showers.view(np.uint32))
    np.testing.assert_array_equal(inc2.view(np.uint32), inc.view(np.uint32))


def test_points_and_fields():
    g = get_geometry("ds2")
    inc, showers = sparse_showers(20, "ds2", seed=1)
    clouds = voxels_to_clouds(showers, inc[:, 0], g)  # [N] is accepted as well as [N, 1]
    f = clouds.fields
    np.testing.assert_array_equal(f["num_points"], (showers != 0).sum(axis=1))
    assert f["num_points"].dtype == np.int32 and f["incident_energy"].dtype == np.float32
    assert f["energy_sum"].dtype == np.float64
    np.testing.assert_allclose(f["energy_sum"], showers.sum(axis=1, dtype=np.float64), rtol=1e-12)
    assert clouds.counts[1] == 0
    # cloud 2: its points are its non-zero voxels, in voxel order, with their cells
    pts = clouds.cloud(2)["points"]
    vox = np.flatnonzero(showers[2])
    np.testing.assert_array_equal(pts[:, 3], showers[2, vox])
    np.testing.assert_array_equal(pts[:, :3], g.voxel_cells[vox].astype(np.float32))


def test_incident_energy_keeps_float64_values():
    inc = np.array([[1000.123456789012], [2 ** 22 + 0.1]], dtype=np.float64)
    showers = np.zeros((2, 368), dtype=np.float32)
    showers[:, 5] = 1.0
    clouds = voxels_to_clouds(showers, inc, "ds1-photons")
    assert clouds.fields["incident_energy"].dtype == np.float64
    back, _ = clouds_to_voxels(clouds, "ds1-photons")
    np.testing.assert_array_equal(back, inc)


def test_threshold_drops_hits_below_it():
    _, showers = sparse_showers(10, "ds2", seed=2)
    cut = voxels_to_clouds(showers, np.ones(10), "ds2", threshold=1.0)
    assert (cut.points[:, 3] >= 1.0).all()
    np.testing.assert_array_equal(cut.fields["num_points"], (showers >= 1.0).sum(axis=1))
    _, back = clouds_to_voxels(cut, "ds2")
    np.testing.assert_array_equal(back, np.where(showers >= 1.0, showers, 0))
    assert READOUT_THRESHOLD_MEV == pytest.approx(15.15e-3)


def _generated(cells, energies, counts, inc=None):
    pts = np.concatenate([np.asarray(cells, dtype=np.float32), np.asarray(energies, dtype=np.float32)[:, None]], axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    fields = {} if inc is None else {"incident_energy": np.asarray(inc, dtype=np.float32)}
    return Clouds(pts, offsets, fields, POINT_FEATURES)


def test_hits_in_the_same_cell_are_summed():
    e = np.array([0.1, 0.2, 0.3, 5.0, 7.0], dtype=np.float32)
    clouds = _generated([[3, 1, 2], [0, 0, 0], [3, 1, 2], [3, 1, 2], [0, 0, 0]], e, [3, 2], inc=[10, 20])
    inc, showers = clouds_to_voxels(clouds, "ds2")
    g = get_geometry("ds2")
    a, b = g.cell_to_voxel(3, 1, 2), g.cell_to_voxel(0, 0, 0)
    assert showers[0, a] == np.float32(np.float64(e[0]) + np.float64(e[2]))
    assert showers[0, b] == e[1]
    assert showers[1, a] == e[3] and showers[1, b] == e[4]
    assert np.count_nonzero(showers) == 4 and inc.ravel().tolist() == [10, 20]


def test_out_of_grid_and_fractional_points():
    clouds = _generated([[3, 1, 2], [3, 1, 9]], [1.0, 2.0], [2])  # r_bin 9 is beyond ds2's 9 bins
    with pytest.raises(IndexError, match="r_bin 9"):
        clouds_to_voxels(clouds, "ds2")
    _, showers = clouds_to_voxels(clouds, "ds2", out_of_range="drop")
    assert showers.sum() == 1.0
    with pytest.raises(ValueError, match="whole bin numbers"):
        clouds_to_voxels(_generated([[3, 1.5, 2]], [1.0], [1]), "ds2")
    with pytest.raises(ValueError, match=r"shape \[N, 6480\]"):
        voxels_to_clouds(np.zeros((2, 368), np.float32), np.ones(2), "ds2")


def test_bin_centres_polar_and_cartesian():
    clouds = _generated([[4, 3, 2], [0, 15, 8]], [1.0, 1.0], [2])
    polar = bin_centres(clouds, "ds2")
    step = 2 * np.pi / 16
    np.testing.assert_allclose(polar[0], [4, -np.pi + 3.5 * step, 2.5 * 4.65], rtol=1e-6)
    np.testing.assert_allclose(polar[1], [0, -np.pi + 15.5 * step, 8.5 * 4.65], rtol=1e-6)
    xy = bin_centres(clouds, "ds2", cartesian=True)
    np.testing.assert_allclose(xy[:, 1], polar[:, 2] * np.cos(polar[:, 1]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xy[:, 2], polar[:, 2] * np.sin(polar[:, 1]), rtol=1e-5, atol=1e-5)
    assert polar.dtype == np.float32


def test_dequantise_is_seeded_and_floor_recovers_the_cell():
    _, showers = sparse_showers(30, "ds3", seed=3, fill=0.05)
    clouds = voxels_to_clouds(showers, np.ones(30), "ds3")
    cells = clouds.points[:, :3].astype(np.int64)
    x = dequantise(clouds, seed=7)
    assert x.dtype == np.float32 and x.shape == (clouds.num_points, 3)
    np.testing.assert_array_equal(quantise(x), cells)
    assert ((x >= cells) & (x < cells + 1)).all()
    np.testing.assert_array_equal(x, dequantise(clouds, seed=7))
    assert not np.array_equal(x, dequantise(clouds, seed=8))
    frac = x - cells
    assert 0.45 < frac.mean() < 0.55  # uniform inside the cell


class _AlmostOne(np.random.Generator):
    """A generator whose uniforms are all the largest float32 below 1: the worst case."""

    def random(self, size=None, dtype=np.float64, out=None):
        return np.full(size, np.nextafter(dtype(1), dtype(0)), dtype=dtype)


def test_dequantise_never_reaches_the_next_cell():
    clouds = _generated([[44, 49, 17], [0, 0, 0]], [1.0, 1.0], [2])
    x = dequantise(clouds, seed=_AlmostOne(np.random.PCG64(0)))
    np.testing.assert_array_equal(quantise(x), [[44, 49, 17], [0, 0, 0]])  # 49 + 0.99999994 rounds to 50


def test_dequantised_to_physical_stays_inside_the_cell():
    g = get_geometry("ds1-pions")
    _, showers = sparse_showers(10, "ds1-pions", seed=4)
    clouds = voxels_to_clouds(showers, np.ones(10), g)
    phys = dequantised_to_physical(dequantise(clouds, seed=1), g)
    voxel = g.cell_to_voxel(*clouds.points[:, :3].astype(np.int64).T)
    lo_a, hi_a = g.voxel_alpha_edges[voxel].T
    lo_r, hi_r = g.voxel_r_edges[voxel].T
    assert ((phys[:, 1] >= lo_a) & (phys[:, 1] <= hi_a)).all()
    assert ((phys[:, 2] >= lo_r) & (phys[:, 2] <= hi_r)).all()
    xy = dequantised_to_physical(dequantise(clouds, seed=1), g, cartesian=True)
    np.testing.assert_allclose(np.hypot(xy[:, 1], xy[:, 2]), phys[:, 2], rtol=1e-9)


@pytest.mark.parametrize("geometry, threshold", [("ds2", None), ("ds1-photons", 0.5)])
def test_torch_matches_numpy(geometry, threshold):
    inc, showers = sparse_showers(40, geometry, seed=5)
    ref = voxels_to_clouds(showers, inc, geometry, threshold=threshold)
    points, offsets = voxels_to_points_torch(torch.from_numpy(showers), geometry, threshold=threshold)
    assert points.dtype == torch.float32 and offsets.dtype == torch.int64
    assert torch.equal(points, torch.from_numpy(ref.points)) and torch.equal(offsets, torch.from_numpy(ref.offsets))
    back = points_to_voxels_torch(points, offsets, geometry)
    _, ref_back = clouds_to_voxels(ref, geometry)
    assert torch.equal(back.view(torch.int32), torch.from_numpy(ref_back).view(torch.int32))


def test_torch_sums_coinciding_hits_like_numpy():
    rng = np.random.default_rng(6)
    n_points = 3000
    cells = np.stack([rng.integers(0, 45, n_points), rng.integers(0, 16, n_points), rng.integers(0, 9, n_points)], 1)
    counts = np.array([1000, 0, 2000])
    clouds = _generated(cells, rng.random(n_points, dtype=np.float32), counts)
    _, ref = clouds_to_voxels(clouds, "ds2")
    got = points_to_voxels_torch(torch.from_numpy(clouds.points), torch.from_numpy(clouds.offsets), "ds2")
    assert torch.equal(got, torch.from_numpy(ref))
    with pytest.raises(ValueError, match="not voxels"):
        bad = clouds.points.copy()
        bad[0, 0] = 45
        points_to_voxels_torch(torch.from_numpy(bad), torch.from_numpy(clouds.offsets), "ds2")


def test_quantise_floors_negative_coordinates_and_points_below_the_grid_are_dropped():
    # floor, not truncation toward zero: -0.5 is cell -1 (outside), not cell 0
    np.testing.assert_array_equal(quantise(np.array([[-0.5, -1e-7, 0.2], [1.99, -2.0, 44.999]])),
                                  [[-1, -1, 0], [1, -2, 44]])
    generated = np.array([[3.4, -0.25, 2.7], [3.2, 1.5, 2.1]])  # the first point is below the angle grid
    cells = quantise(generated).astype(np.float32)
    clouds = _generated(cells.tolist(), [5.0, 2.0], [2])
    with pytest.raises(IndexError, match="alpha_bin -1"):
        clouds_to_voxels(clouds, "ds2")
    _, showers = clouds_to_voxels(clouds, "ds2", out_of_range="drop")
    assert showers.sum() == 2.0 and showers[0, get_geometry("ds2").cell_to_voxel(3, 1, 2)] == 2.0


def test_dequantised_to_physical_spreads_each_fraction_linearly_over_its_own_range():
    # A point at fractions (0.25, 0.75) of its cell's angle and radius ranges lands exactly there;
    # the layer coordinate (with its own fraction) is kept as it is.
    g = get_geometry("ds2")
    cells = np.array([[3, 7, 5], [40, 0, 8]])
    coords = cells + np.array([[0.5, 0.25, 0.75], [0.125, 0.75, 0.25]])
    voxel = g.cell_to_voxel(*cells.T)
    (a0, a1), (r0, r1) = g.voxel_alpha_edges[voxel].T, g.voxel_r_edges[voxel].T
    want_a = a0 + np.array([0.25, 0.75]) * (a1 - a0)
    want_r = r0 + np.array([0.75, 0.25]) * (r1 - r0)
    np.testing.assert_allclose(dequantised_to_physical(coords, g), np.stack([coords[:, 0], want_a, want_r], 1), rtol=1e-12)
    xy = dequantised_to_physical(coords.astype(np.float32), "ds2", cartesian=True)
    assert xy.dtype == np.float64
    np.testing.assert_allclose(xy, np.stack([coords[:, 0], want_r * np.cos(want_a), want_r * np.sin(want_a)], 1),
                               rtol=1e-6, atol=1e-9)
