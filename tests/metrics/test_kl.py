"""pcmodels.metrics.kl: the binned, bootstrapped KL divergence of the EPiC-FM paper."""

from __future__ import annotations

import numpy as np
import pytest

from pcmodels.metrics import KL_SCALE, histogram_edges, kl_divergence, kl_metric


@pytest.fixture
def gauss():
    rng = np.random.default_rng(0)
    return rng.normal(size=4000), rng.normal(size=4000), rng.normal(0.5, 1.2, size=4000)


def test_binning_is_30_even_bins_between_the_reference_quantiles(gauss):
    ref, _, _ = gauss
    edges = histogram_edges(ref)
    assert len(edges) == 31
    np.testing.assert_allclose(edges[[0, -1]], np.quantile(ref, (0.001, 0.999)))
    np.testing.assert_allclose(np.diff(edges), np.diff(edges)[0])
    # A constant feature still gets a usable range.
    assert np.all(np.diff(histogram_edges(np.ones(10))) > 0)


def test_identical_samples_give_zero_and_different_ones_do_not(gauss):
    a, b, shifted = gauss
    same = kl_divergence(a, a, num_bootstrap=0)
    assert same.forward[0] == 0.0 and same.reverse[0] == 0.0 and same.symmetric == 0.0
    assert same.forward_std[0] == 0.0
    floor = kl_divergence(a, b, num_bootstrap=20, sample_size=2000)
    worse = kl_divergence(a, shifted, num_bootstrap=20, sample_size=2000)
    assert worse.symmetric > 4 * floor.symmetric
    assert worse.symmetric > floor.symmetric + 3 * (worse.symmetric_std + floor.symmetric_std)


def test_both_directions_swap_with_the_samples_on_a_fixed_binning(gauss):
    a, _, shifted = gauss
    edges = [histogram_edges(a)]
    ab = kl_divergence(a, shifted, num_bootstrap=0, edges=edges)
    ba = kl_divergence(shifted, a, num_bootstrap=0, edges=edges)
    assert ab.forward[0] == pytest.approx(ba.reverse[0], rel=1e-12)
    assert ab.reverse[0] == pytest.approx(ba.forward[0], rel=1e-12)
    assert ab.symmetric == pytest.approx(ba.symmetric, rel=1e-12)
    # KL itself is not symmetric: the two directions differ for different widths.
    assert ab.forward[0] != pytest.approx(ab.reverse[0], rel=1e-3)


def test_matches_a_direct_computation(gauss):
    a, _, shifted = gauss
    edges = histogram_edges(a)
    p = np.histogram(np.clip(a, edges[0], edges[-1]), edges)[0] / len(a) + 1e-8
    q = np.histogram(np.clip(shifted, edges[0], edges[-1]), edges)[0] / len(shifted) + 1e-8
    p, q = p / p.sum(), q / q.sum()
    r = kl_divergence(a, shifted, num_bootstrap=0)
    assert r.forward[0] == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-12)
    assert r.reverse[0] == pytest.approx(np.sum(q * np.log(q / p)), rel=1e-12)


def test_bootstrap_gives_a_seeded_spread(gauss):
    a, b, _ = gauss
    one = kl_divergence(a, b, num_bootstrap=30, seed=1)
    assert one.forward_std[0] > 0 and one.symmetric_std > 0
    again = kl_divergence(a, b, num_bootstrap=30, seed=1)
    assert again.symmetric == one.symmetric
    assert kl_divergence(a, b, num_bootstrap=30, seed=2).symmetric != one.symmetric
    # Resampling adds noise, so the bootstrap mean sits above the plain estimate; smaller draws
    # raise it further (why an evaluation draws as many jets as its real-vs-real floor).
    plain = kl_divergence(a, b, num_bootstrap=0)
    small = kl_divergence(a, b, num_bootstrap=30, seed=1, sample_size=500)
    assert plain.symmetric < one.symmetric < small.symmetric


def test_values_outside_the_range_count_in_the_outer_bins():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, 1000)
    far = rng.uniform(5, 6, 1000)  # entirely above the reference: all in the last bin
    r = kl_divergence(ref, far, num_bootstrap=0)
    assert np.isfinite(r.forward[0]) and r.forward[0] > 5  # ~ log(1 / (1e-8 + ...))


def test_several_features_share_the_bootstrap_and_make_one_metric(gauss):
    a, b, shifted = gauss
    real = {"mass": a, "multiplicity": np.round(b * 10)}
    gen = {"multiplicity": np.round(a * 10), "mass": shifted}  # any key order
    r = kl_divergence(real, gen, num_bootstrap=10)
    assert r.names == ("mass", "multiplicity")
    per_feature = (r.forward + r.reverse) / 2
    assert r.symmetric == pytest.approx(per_feature.mean(), rel=1e-12)
    m = kl_metric(real, gen, num_bootstrap=10)
    assert m.scale == KL_SCALE and m.value == pytest.approx(r.symmetric)
    assert set(m.components) == {"mass/forward", "mass/reverse", "multiplicity/forward", "multiplicity/reverse"}
    with pytest.raises(KeyError, match="mass"):
        kl_divergence(real, {"multiplicity": a})
    with pytest.raises(ValueError, match="at least one"):
        kl_divergence(a, a[:0])
