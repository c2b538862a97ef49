"""Clouds -> JetNet arrays: particles by descending ptrel whatever order they come in."""

from __future__ import annotations

import numpy as np

from pcdata.clouds import Clouds
from pcdata.sources.jetnet import clouds_to_jetnet


def _unsorted(rng, counts):
    points = rng.normal(size=(int(sum(counts)), 3)).astype(np.float32)
    points[:, 2] = rng.uniform(0.001, 0.3, len(points)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    fields = {"pt": rng.uniform(500, 900, len(counts)), "eta": rng.normal(size=len(counts)),
              "mass": rng.uniform(100, 200, len(counts))}
    return Clouds(points, offsets, fields, ("etarel", "phirel", "ptrel"))


def test_unsorted_clouds_come_out_by_descending_ptrel_padded_and_truncated():
    rng = np.random.default_rng(3)
    counts = [5, 1, 8, 0, 3]
    clouds = _unsorted(rng, counts)
    assert any(np.any(np.diff(clouds.points[a:b, 2]) > 0) for a, b in zip(clouds.offsets[:-1], clouds.offsets[1:]))
    pf, jf = clouds_to_jetnet(clouds, 6)
    assert pf.shape == (5, 6, 4) and pf.dtype == np.float32 and jf.shape == (5, 4)
    for i, (a, b) in enumerate(zip(clouds.offsets[:-1], clouds.offsets[1:])):
        mine = clouds.points[a:b]
        want = mine[np.argsort(-mine[:, 2], kind="stable")][:6]  # the hardest particles are kept
        k = len(want)
        np.testing.assert_array_equal(pf[i, :k, :3], want)
        np.testing.assert_array_equal(pf[i, :, 3], np.arange(6) < k)
        np.testing.assert_array_equal(pf[i, k:], 0)
    np.testing.assert_allclose(jf[:, :3], np.stack([clouds.fields[k] for k in ("pt", "eta", "mass")], 1), rtol=1e-6)
    np.testing.assert_array_equal(jf[:, 3], counts)  # no num_particles field: the multiplicity


def test_equal_ptrel_keeps_the_stored_order_and_a_num_particles_field_is_kept():
    pts = np.array([[1, 0, 0.2], [2, 0, 0.5], [3, 0, 0.2], [4, 0, 0.5]], np.float32)
    clouds = Clouds(pts, np.array([0, 4]), {"num_particles": np.array([30])}, ("etarel", "phirel", "ptrel"))
    pf, jf = clouds_to_jetnet(clouds, 4)
    np.testing.assert_array_equal(pf[0, :, 0], [2, 4, 1, 3])
    assert jf[0, 3] == 30
