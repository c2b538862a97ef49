"""pcmodels.metrics.plots: histograms with ratio panels, written as PNG without pyplot."""

from __future__ import annotations


import numpy as np

from pcmodels.metrics import plot_comparison
from pcmodels.metrics.plots import feature_edges


def test_edges_span_both_samples_and_integers_get_one_bin_each():
    rng = np.random.default_rng(0)
    real, off = rng.normal(0, 1, 1000), rng.normal(10, 1, 1000)
    edges = feature_edges(real, off)
    assert edges[0] < -2 and edges[-1] > 12
    counts = rng.integers(20, 40, 500).astype(float)
    np.testing.assert_array_equal(np.diff(feature_edges(counts)), 1.0)
    log = feature_edges(np.exp(rng.normal(-4, 1, 1000)), log=True)
    assert log[0] > 0 and np.allclose(np.diff(np.log(log)), np.log(log[1] / log[0]))


def test_plot_comparison_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    real = {"mass": rng.normal(0.17, 0.03, 500), "multiplicity": rng.integers(40, 90, 500).astype(float)}
    gen = {"mass": rng.normal(0.18, 0.03, 400), "multiplicity": rng.integers(40, 95, 400).astype(float)}
    path = plot_comparison(real, gen, tmp_path / "jets.png", labels={"mass": "m / pT"}, title="jets")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
