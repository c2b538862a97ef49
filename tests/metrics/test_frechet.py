"""pcmodels.metrics.frechet: FPD and KPD equal jetnet's (what the CaloChallenge evaluator calls)
on the same arrays, and behave as distances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pcmodels.metrics import frechet
from pcmodels.metrics.jets import load_jetnet_evaluation


def _samples(n_real=1500, n_gen=1200, d=12, shift=0.15, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    real = rng.normal(size=(n_real, d)) @ mix + 3.0  # offset: the shift-invariance is exercised
    gen = rng.normal(size=(n_gen, d)) @ (mix * 1.1) + 3.0 + shift
    return real, gen


@pytest.fixture(scope="module")
def jetnet():
    return load_jetnet_evaluation()


def test_fpd_equals_jetnet(jetnet):
    real, gen = _samples()
    args = dict(min_samples=800, max_samples=3000, num_batches=6, num_points=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jetnet's "50,000 recommended" and scipy's sqrtm deprecation
        expected = jetnet.fpd(real, gen, **args)
    got = frechet.fpd(real, gen, **args)
    assert got[0] == pytest.approx(float(expected[0]), rel=1e-6)
    assert got[1] == pytest.approx(float(expected[1]), rel=1e-6)
    assert got[0] > 10 * got[1]  # a real difference is resolved


def test_kpd_equals_jetnet(jetnet):
    real, gen = _samples()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = jetnet.kpd(real, gen, num_batches=5, batch_size=700)
    got = frechet.kpd(real, gen, num_batches=5, batch_size=700)
    assert got[0] == pytest.approx(float(expected[0]), rel=1e-6)
    assert got[1] == pytest.approx(float(expected[1]), rel=1e-6)


def test_distances_are_near_zero_for_one_distribution_and_grow_with_the_difference():
    same = frechet.fpd(*_samples(shift=0.0, seed=1), min_samples=800, max_samples=3000, num_points=4, num_batches=4)
    far = frechet.fpd(*_samples(shift=0.5, seed=1), min_samples=800, max_samples=3000, num_points=4, num_batches=4)
    assert far[0] > 20 * max(same[0], 1e-4)
    k_same = frechet.kpd(*_samples(shift=0.0, seed=2), num_batches=4, batch_size=600)
    k_far = frechet.kpd(*_samples(shift=0.5, seed=2), num_batches=4, batch_size=600)
    assert abs(k_same[0]) < 3 * k_same[1] + 1e-4 and k_far[0] > 10 * k_far[1]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same d"):
        frechet.fpd(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet.kpd(np.zeros((1, 3)), np.zeros((10, 3)))


def test_constant_features_and_singular_covariances_match_jetnet(jetnet):
    # small samples have constant columns (an always-empty layer): the fast path drops them
    real, gen = _samples(n_real=300, n_gen=300, d=8)
    real[:, 2] = 0.5
    gen[:, 5] = -1.0
    gen[:, 6] = gen[:, 0] * 2  # collinear: a singular covariance that is not a constant column
    args = dict(min_samples=200, max_samples=600, num_batches=3, num_points=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = jetnet.fpd(real, gen, **args)
    assert frechet.fpd(real, gen, **args)[0] == pytest.approx(float(expected[0]), rel=1e-6)
