"""pcmodels.metrics.calo: features of hand-made showers, the official binnings, labels and
thresholds, and separation powers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pcdata.geometry.calo import get_geometry
from pcmodels.metrics import calo
from pcmodels.metrics.calo import (THRESHOLD_MEV, ShowerFeatures, compute_features, high_level_names,
                                   high_level_vector, histograms, separation_power, separation_powers)


def _alpha_centre(geo, layer, a):
    n = geo.n_alpha[layer]
    return -math.pi + (a + 0.5) * 2 * math.pi / n


def _r_centre(geo, layer, r):
    e = geo.r_edges[layer]
    return 0.5 * (e[r] + e[r + 1])


def _voxel(geo, layer, a, r):
    return int(geo.layer_offsets[layer] + a * geo.n_r[layer] + r)


# -- thresholds, binnings and labels against the reference facts --------------------------------


def test_thresholds_are_the_official_ones():
    assert THRESHOLD_MEV["ds1-photons"] == THRESHOLD_MEV["ds1-pions"] == 1.0
    assert THRESHOLD_MEV["ds2"] == THRESHOLD_MEV["ds3"] == pytest.approx(0.0151515151515, rel=1e-12)


@pytest.mark.parametrize("name", ["ds2", "ds3"])
def test_ds2_ds3_official_labels_order_and_count(name):
    hists = histograms(name)
    official = [h.label for h in hists if h.official]
    layers = range(45)
    expected = (["Etot / Einc"] + [f"E layer {l}" for l in layers] + [f"EC Eta layer {l}" for l in layers]
                + [f"EC Phi layer {l}" for l in layers] + [f"Width Eta layer {l}" for l in layers]
                + [f"Width Phi layer {l}" for l in layers] + ["Voxel distribution"])
    assert official == expected and len(official) == 227
    extras = [h.label for h in hists if not h.official]
    assert extras == ([f"Sparsity layer {l}" for l in layers] + [f"EC r layer {l}" for l in layers]
                      + [f"Width r layer {l}" for l in layers])
    by = {h.label: h for h in hists}
    np.testing.assert_array_equal(by["Etot / Einc"].edges(None), np.linspace(0.5, 1.5, 101))
    np.testing.assert_array_equal(by["EC Eta layer 7"].edges(None), np.linspace(-30, 30, 101))
    np.testing.assert_array_equal(by["Width Phi layer 7"].edges(None), np.linspace(0, 30, 101))
    np.testing.assert_array_equal(by["Sparsity layer 0"].edges(None), np.linspace(0, 1, 21))
    np.testing.assert_array_equal(by["EC r layer 3"].edges(None), np.linspace(0, 42, 101))
    np.testing.assert_array_equal(by["Width r layer 3"].edges(None), np.linspace(0, 20, 101))
    ref = np.array([5.0, 80.0, 0.0], np.float32)
    edges = by["E layer 3"].edges(ref)
    assert len(edges) == 40 and edges[0] == pytest.approx(THRESHOLD_MEV[name]) and edges[-1] == pytest.approx(80.0)


def test_ds1_labels_layers_and_bins():
    photons = {h.label: h for h in histograms("ds1-photons")}
    assert [l for l in photons if l.startswith("E layer")] == [f"E layer {l}" for l in (0, 1, 2, 3, 12)]
    assert [l for l in photons if l.startswith("EC Eta")] == ["EC Eta layer 1", "EC Eta layer 2"]
    per_energy = [l for l in photons if l.startswith("Etot / Einc at E = ")]
    assert per_energy[0] == "Etot / Einc at E = 256.0" and per_energy[-1] == "Etot / Einc at E = 4194304.0"
    assert len(per_energy) == 15
    # photons: 0.4..1.4 up to 2048 MeV, then the narrow 0.9..1.1 bins
    np.testing.assert_array_equal(photons["Etot / Einc at E = 2048.0"].edges(None), np.linspace(0.4, 1.4, 21))
    np.testing.assert_array_equal(photons["Etot / Einc at E = 4096.0"].edges(None), np.linspace(0.9, 1.1, 21))
    labels = list(photons)
    assert labels.index("Width Phi layer 2") < labels.index("Etot / Einc at E = 256.0") < labels.index("Voxel distribution")
    pions = {h.label: h for h in histograms("ds1-pions")}
    assert [l for l in pions if l.startswith("EC Phi")] == [f"EC Phi layer {l}" for l in (1, 2, 12, 13)]
    np.testing.assert_array_equal(pions["EC Eta layer 12"].edges(None), np.linspace(-500, 500, 101))
    np.testing.assert_array_equal(pions["EC Eta layer 2"].edges(None), np.linspace(-100, 100, 101))
    np.testing.assert_array_equal(pions["Width Eta layer 13"].edges(None), np.linspace(0, 400, 101))
    np.testing.assert_array_equal(pions["EC r layer 14"].edges(None), np.linspace(0, 1500, 101))
    np.testing.assert_array_equal(pions["Width r layer 0"].edges(None), np.linspace(0, 500, 101))
    np.testing.assert_array_equal(pions["Etot / Einc at E = 8192.0"].edges(None), np.linspace(0.4, 1.4, 21))


def test_high_level_vector_has_the_official_362_columns():
    assert len(high_level_names("ds2")) == len(high_level_names("ds3")) == 362
    # photons: 1 + 5 + 4 x 2 + 1 + 3 x 5
    assert len(high_level_names("ds1-photons")) == 30


# -- features of hand-made showers ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["ds2", "ds3", "ds1-photons", "ds1-pions"])
def test_one_hit_per_layer_gives_its_position_and_zero_width(name):
    geo = get_geometry(name)
    rng = np.random.default_rng(1)
    showers = np.zeros((3, geo.n_voxels), np.float32)
    truth = {}
    for s in range(3):
        for layer in geo.active_layers:
            a, r = int(rng.integers(geo.n_alpha[layer])), int(rng.integers(geo.n_r[layer]))
            e = np.float32(rng.uniform(2.0, 50.0))
            showers[s, _voxel(geo, layer, a, r)] = e
            truth[s, layer] = (e, _r_centre(geo, layer, r), _alpha_centre(geo, layer, a))
    inc = np.array([1000.0, 2000.0, 3000.0])
    f = compute_features(showers, inc, geo)
    alpha_layers = [l for l in geo.active_layers if geo.n_alpha[l] > 1]
    assert f.layers == geo.active_layers and list(f.alpha_layers) == alpha_layers
    for s in range(3):
        for j, layer in enumerate(geo.active_layers):
            e, r, a = truth[s, layer]
            assert f.e_layer[s, j] == e
            assert f.sparsity[s, j] == pytest.approx(1 - 1 / geo.layer_sizes[layer])
            assert f.ec_r[s, j] == pytest.approx(r, rel=1e-12) and f.width_r[s, j] < 1e-5
            if layer in alpha_layers:
                k = alpha_layers.index(layer)
                assert f.ec_eta[s, k] == pytest.approx(r * math.cos(a), abs=1e-9)
                assert f.ec_phi[s, k] == pytest.approx(r * math.sin(a), abs=1e-9)
                assert f.width_eta[s, k] < 1e-5 and f.width_phi[s, k] < 1e-5
        assert f.e_tot[s] == pytest.approx(sum(truth[s, l][0] for l in geo.active_layers), rel=1e-6)
    np.testing.assert_array_equal(f.incident, inc)
    assert f.row_max.dtype == np.float32 and f.voxel_max == showers.max()


def test_two_hits_give_the_weighted_centre_and_width_and_empty_layers_give_zero():
    geo = get_geometry("ds2")
    showers = np.zeros((1, geo.n_voxels), np.float32)
    # layer 5: 3 MeV at r bin 0 and 1 MeV at r bin 4, same angle bin 3
    showers[0, _voxel(geo, 5, 3, 0)] = 3.0
    showers[0, _voxel(geo, 5, 3, 4)] = 1.0
    # layer 9: a hit below the 15.15 keV threshold only (removed), layer 10: nothing
    showers[0, _voxel(geo, 9, 0, 0)] = 0.01
    f = compute_features(showers, np.array([100.0]), geo)
    r1, r2 = _r_centre(geo, 5, 0), _r_centre(geo, 5, 4)
    assert f.ec_r[0, 5] == pytest.approx((3 * r1 + r2) / 4, rel=1e-12)
    assert f.width_r[0, 5] == pytest.approx(abs(r1 - r2) * math.sqrt(3) / 4, rel=1e-9)
    a = _alpha_centre(geo, 5, 3)
    assert f.ec_eta[0, 5] == pytest.approx((3 * r1 + r2) / 4 * math.cos(a), rel=1e-12)
    assert f.width_eta[0, 5] == pytest.approx(abs(r1 - r2) * math.sqrt(3) / 4 * abs(math.cos(a)), rel=1e-9)
    assert f.sparsity[0, 5] == pytest.approx(1 - 2 / 144)
    for layer in (9, 10):
        assert f.e_layer[0, layer] == 0 and f.sparsity[0, layer] == 1.0
        assert f.ec_r[0, layer] == f.width_r[0, layer] == f.ec_eta[0, layer] == f.width_phi[0, layer] == 0.0
    assert f.e_tot[0] == 4.0


def test_threshold_is_strict_and_in_the_showers_dtype():
    thr = np.float32(THRESHOLD_MEV["ds2"])  # a float32 file compares in float32, as numpy does
    x = np.array([[thr, np.nextafter(thr, np.float32(0)), 1.0]], np.float32)
    out = calo.threshold(x, "ds2")
    assert out.dtype == np.float32 and out[0, 0] == thr and out[0, 1] == 0 and out[0, 2] == 1.0


def test_regular_path_equals_the_layer_by_layer_path_bit_for_bit():
    # ds2/ds3 use one [B, L, V] view; it must give exactly the per-layer slices' numbers, which
    # are the official code's operations.
    geo = get_geometry("ds2")
    rng = np.random.default_rng(4)
    x = (rng.random((50, geo.n_voxels)) < 0.2) * rng.lognormal(0, 2, (50, geo.n_voxels))
    x = calo.threshold(x.astype(np.float32), geo)
    fast = calo._regular(x, geo)
    slow = calo._by_layer(x, geo, geo.active_layers, list(geo.active_layers))
    for key in fast:
        np.testing.assert_array_equal(fast[key], slow[key], err_msg=key)


def test_features_of_blocks_concatenate_to_the_features_of_the_whole():
    geo = get_geometry("ds1-pions")
    rng = np.random.default_rng(5)
    x = ((rng.random((40, geo.n_voxels)) < 0.3) * rng.lognormal(1, 2, (40, geo.n_voxels))).astype(np.float32)
    inc = rng.uniform(1e3, 1e5, 40)
    whole = compute_features(x, inc, geo)
    parts = ShowerFeatures.concatenate([compute_features(x[i:i + 7], inc[i:i + 7], geo) for i in range(0, 40, 7)])
    for key in ShowerFeatures._ROWS:
        np.testing.assert_array_equal(getattr(whole, key), getattr(parts, key), err_msg=key)
    sub = whole.subset(np.array([3, 9]))
    assert sub.voxel_max == x[[3, 9]].max()
    hl = high_level_vector(whole)
    assert hl.shape == (40, len(high_level_names(geo))) and hl.dtype == np.float64
    np.testing.assert_allclose(hl[:, 0], np.log10(inc))
    assert hl[:, 1] == pytest.approx(np.log10(whole.e_layer[:, 0] + 1e-8), rel=1e-6)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\[N, 6480\]"):
        compute_features(np.zeros((2, 100), np.float32), np.ones(2), "ds2")
    with pytest.raises(ValueError, match="3 incident energies for 2 showers"):
        compute_features(np.zeros((2, 368), np.float32), np.ones(3), "ds1-photons")


# -- separation power --------------------------------------------------------------------------


def test_separation_power_by_hand():
    edges = np.array([0.0, 1.0, 2.0])
    same = separation_power(np.array([0.5, 0.5]), np.array([0.5, 0.5]), edges)
    assert same == 0.0
    assert separation_power(np.array([1.0, 0.0]), np.array([0.0, 1.0]), edges) == pytest.approx(1.0)
    # h1 = (1/2, 1/2), h2 = (1, 0): 0.5 * ((1/4)/(3/2) + (1/4)/(1/2)) = 1/3
    assert separation_power(np.array([0.5, 0.5]), np.array([1.0, 0.0]), edges) == pytest.approx(1 / 3)
    # unequal bin widths: densities are turned into fractions first
    assert separation_power(np.array([0.25, 0.25]), np.array([0.5, 0.0]), np.array([0.0, 2.0, 4.0])) == \
        pytest.approx(1 / 3)


def _features_with_etot(etot_over_einc: np.ndarray) -> ShowerFeatures:
    geo = get_geometry("ds1-photons")
    n = len(etot_over_einc)
    x = np.zeros((n, geo.n_voxels), np.float32)
    x[:, _voxel(geo, 0, 0, 0)] = (etot_over_einc * 1000).astype(np.float32)
    return compute_features(x, np.full(n, 1000.0), geo)


def test_separation_powers_of_known_histograms():
    # Etot/Einc: real 4 showers in bin [1.00, 1.01), generated 2 there and 2 in [1.20, 1.21):
    # h_ref = (1, 0), h_gen = (1/2, 1/2) -> 1/3. Values out of range (2.0) are dropped first.
    ref = _features_with_etot(np.array([1.005, 1.005, 1.005, 1.005]))
    gen = _features_with_etot(np.array([1.005, 1.005, 1.205, 1.205, 2.0]))
    # The same voxel histogram twice, of energies well inside the bins: e_tot itself sits on the top
    # edge (the reference's maximum), which logspace reproduces to the last ulp or not, by platform.
    half = ref.e_tot * 0.5
    seps = separation_powers(ref, gen, voxel_counts=lambda edges: (np.histogram(half, edges)[0],
                                                                   np.histogram(half, edges)[0]))
    assert seps["Etot / Einc"]["value"] == pytest.approx(1 / 3)
    assert seps["Voxel distribution"]["value"] == 0.0
    # every E layer bin edge comes from the reference's maximum
    assert seps["E layer 0"]["edges"][-1] == pytest.approx(ref.e_layer[:, 0].max())
    # an empty histogram (no generated energy in layer 1) is NaN, as in the official code
    assert math.isnan(seps["E layer 1"]["value"])
    assert list(seps)[:2] == ["Etot / Einc", "E layer 0"]
