"""Tests of pcdata.geometry.jets: relative <-> absolute coordinates, four-vectors, jet sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcdata.geometry import jets as gj


def _random_jets(n=64, p=40, dtype=np.float64, seed=0):
    """Padded constituents around random jet axes, with a prefix mask, as numpy arrays."""
    rng = np.random.default_rng(seed)
    jet_pt = rng.uniform(500, 1500, n)
    jet_eta = rng.uniform(-2.5, 2.5, n)
    jet_phi = rng.uniform(-math.pi, math.pi, n)
    pt = rng.exponential(20, (n, p)) + 0.5
    eta = jet_eta[:, None] + rng.normal(0, 0.3, (n, p))
    phi = gj.wrap_phi(jet_phi[:, None] + rng.normal(0, 0.3, (n, p)))
    m = rng.choice([0.0, 0.13957, 0.49368, 0.93827], (n, p))
    counts = rng.integers(1, p + 1, n)
    mask = np.arange(p)[None, :] < counts[:, None]
    pt, eta, phi, m = (np.where(mask, v, 0.0) for v in (pt, eta, phi, m))
    cast = lambda *vs: tuple(v.astype(dtype) for v in vs)  # noqa: E731
    return cast(pt, eta, phi, m), cast(jet_pt, jet_eta, jet_phi), mask


def _angle_close(a, b, atol):
    """Angles equal modulo 2 pi (a value near -pi may come back near +pi and vice versa)."""
    return np.all(np.abs(np.asarray(gj.wrap_phi(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) <= atol)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_round_trip_numpy(dtype, rtol):
    (pt, eta, phi, _), (jpt, jeta, jphi), mask = _random_jets(dtype=dtype)
    etarel, phirel, ptrel = gj.to_relative(pt, eta, phi, jpt, jeta, jphi, mask)
    assert etarel.dtype == ptrel.dtype == phirel.dtype == dtype
    assert np.all((phirel >= -math.pi) & (phirel < math.pi))
    pt2, eta2, phi2 = gj.to_absolute(etarel, phirel, ptrel, jpt, jeta, jphi, mask)
    assert pt2.dtype == dtype
    np.testing.assert_allclose(pt2, pt, rtol=rtol)
    np.testing.assert_allclose(eta2, eta, rtol=rtol, atol=rtol * 4)
    assert _angle_close(phi2, phi, atol=rtol * 8)
    assert np.all((phi2 >= -math.pi) & (phi2 < math.pi))


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_round_trip_torch(dtype, rtol):
    (pt, eta, phi, _), (jpt, jeta, jphi), mask = _random_jets()
    t = lambda x: torch.as_tensor(x, dtype=dtype)  # noqa: E731
    tm = torch.as_tensor(mask)
    etarel, phirel, ptrel = gj.to_relative(t(pt), t(eta), t(phi), t(jpt), t(jeta), t(jphi), tm)
    assert isinstance(ptrel, torch.Tensor) and ptrel.dtype == dtype
    pt2, eta2, phi2 = gj.to_absolute(etarel, phirel, ptrel, t(jpt), t(jeta), t(jphi), tm)
    assert isinstance(pt2, torch.Tensor) and pt2.dtype == dtype
    np.testing.assert_allclose(pt2.numpy(), t(pt).numpy(), rtol=rtol)
    np.testing.assert_allclose(eta2.numpy(), t(eta).numpy(), rtol=rtol, atol=rtol * 4)
    assert _angle_close(phi2.numpy(), t(phi).numpy(), atol=rtol * 8)


def test_numpy_and_torch_agree():
    (pt, eta, phi, m), (jpt, jeta, jphi), mask = _random_jets(seed=3)
    t = torch.as_tensor
    rel_np = gj.to_relative(pt, eta, phi, jpt, jeta, jphi, mask)
    rel_t = gj.to_relative(t(pt), t(eta), t(phi), t(jpt), t(jeta), t(jphi), t(mask))
    for a, b in zip(rel_np, rel_t):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-13)
    jet_np = gj.jet_from_constituents(pt, eta, phi, m, mask)
    jet_t = gj.jet_from_constituents(t(pt), t(eta), t(phi), t(m), t(mask))
    for name in ("pt", "eta", "phi", "energy"):
        np.testing.assert_allclose(getattr(jet_t, name).numpy(), getattr(jet_np, name), rtol=1e-11, atol=1e-11)
    # m = sqrt(E^2 - p^2) is ill-conditioned near zero: E^2 - p^2 agrees to rounding of E^2, and a
    # (nearly) massless jet's mass may come out 0 in one library and ~sqrt(eps) E in the other.
    np.testing.assert_allclose(jet_t.mass.numpy() ** 2, jet_np.mass ** 2, rtol=1e-11, atol=1e-12 * float((jet_np.energy ** 2).max()))
    np.testing.assert_allclose(
        gj.relative_jet_mass(*(t(v) for v in rel_np), t(mask)).numpy(), gj.relative_jet_mass(*rel_np, mask), rtol=1e-11
    )


def test_phi_wrapping_at_the_edges():
    pi = math.pi
    phi = np.array([-pi, pi, 3 * pi, -3 * pi, pi - 1e-12, -pi + 1e-12, 0.0, 2 * pi])
    w = gj.wrap_phi(phi)
    assert np.all((w >= -pi) & (w < pi))
    np.testing.assert_allclose(w, [-pi, -pi, -pi, -pi, pi - 1e-12, -pi + 1e-12, 0.0, 0.0], atol=1e-12)
    # A value just below -pi wraps to just below +pi, never to +pi itself, also in float32.
    for dtype in (np.float32, np.float64):
        x = np.nextafter(dtype(-pi), dtype(-4)).astype(dtype)
        assert gj.wrap_phi(np.array([x]))[0] < dtype(pi)
    # In float32 the interval is [-pi, pi) with pi rounded to float32 (slightly above math.pi).
    tw = gj.wrap_phi(torch.tensor([-pi, pi, 3 * pi, -pi - 1e-6], dtype=torch.float32))
    pi32 = torch.tensor(pi, dtype=torch.float32)
    assert bool(((tw >= -pi32) & (tw < pi32)).all())

    # Jet axis at +pi - 0.05, constituent at -pi + 0.05: the relative angle is +0.1, not -2pi + 0.1.
    etarel, phirel, ptrel = gj.to_relative(
        np.array([[10.0, 20.0]]), np.array([[0.0, 0.0]]), np.array([[-pi + 0.05, pi - 0.15]]),
        np.array([100.0]), np.array([0.0]), np.array([pi - 0.05]),
    )
    np.testing.assert_allclose(phirel, [[0.1, -0.1]], atol=1e-12)
    pt, eta, phi = gj.to_absolute(etarel, phirel, ptrel, np.array([100.0]), np.array([0.0]), np.array([pi - 0.05]))
    np.testing.assert_allclose(phi, [[-pi + 0.05, pi - 0.15]], atol=1e-12)


def test_masked_padding_stays_zero():
    (pt, eta, phi, m), (jpt, jeta, jphi), mask = _random_jets(seed=5)
    # Put garbage in the padding: the outputs must still be exactly zero there.
    junk = np.where(mask, 0.0, 7.0)
    rel = gj.to_relative(pt + junk, eta + junk, phi + junk, jpt, jeta, jphi, mask)
    for v in rel:
        assert np.all(v[~mask] == 0)
    ab = gj.to_absolute(*(v + junk for v in rel), jpt, jeta, jphi, mask)
    for v in ab:
        assert np.all(v[~mask] == 0)
    for v in gj.ptetaphim_to_pxpypze(pt + junk, eta, phi, m, mask):
        assert np.all(v[~mask] == 0)
    # Jet sums ignore padding: garbage there changes nothing.
    clean = gj.jet_from_constituents(pt, eta, phi, m, mask)
    dirty = gj.jet_from_constituents(pt + junk, eta + junk, phi + junk, m + junk, mask)
    np.testing.assert_array_equal(clean.mass, dirty.mass)
    tm = torch.as_tensor(mask)
    trel = gj.to_relative(*(torch.as_tensor(v + junk) for v in (pt, eta, phi)), *(torch.as_tensor(v) for v in (jpt, jeta, jphi)), tm)
    for v in trel:
        assert bool((v[~tm] == 0).all())


def test_four_vector_round_trip():
    (pt, eta, phi, m), _, mask = _random_jets(seed=7)
    # Heavier masses so that E^2 - p^2 keeps precision in the check.
    m = np.where(mask, m + 5.0, 0.0)
    px, py, pz, e = gj.ptetaphim_to_pxpypze(pt, eta, phi, m, mask)
    pt2, eta2, phi2, m2 = gj.pxpypze_to_ptetaphim(px, py, pz, e, mask)
    np.testing.assert_allclose(pt2, pt, rtol=1e-12)
    np.testing.assert_allclose(eta2, eta, rtol=1e-10, atol=1e-10)
    assert _angle_close(phi2, phi, 1e-12)
    np.testing.assert_allclose(m2, m, rtol=1e-7)
    np.testing.assert_allclose(gj.energy_from_mass(pt, eta, m), np.where(mask, e, gj.energy_from_mass(pt, eta, m)))
    np.testing.assert_allclose(gj.mass_from_energy(pt, eta, e)[mask], m[mask], rtol=1e-7)


def test_jet_mass_of_known_particles():
    # Two massless back-to-back photons of 45.6 GeV each (in the transverse plane): m = 91.2 GeV.
    jet = gj.jet_from_constituents(np.array([45.6, 45.6]), np.zeros(2), np.array([0.0, math.pi]), np.zeros(2))
    assert jet.mass == pytest.approx(91.2, rel=1e-12)
    assert jet.pt == pytest.approx(0.0, abs=1e-12)
    assert jet.energy == pytest.approx(91.2, rel=1e-12)
    # Two massless particles of pt 1 at (eta, phi) = (0, 0) and (d, 0): m^2 = 2 pt1 pt2 (cosh d - 1).
    d = 0.4
    jet = gj.jet_from_constituents(np.array([1.0, 1.0]), np.array([0.0, d]), np.zeros(2), np.zeros(2))
    assert jet.mass == pytest.approx(math.sqrt(2 * (math.cosh(d) - 1)), rel=1e-12)
    # A massive and a massless particle, with a padded slot: the mass is that of the summed
    # four-vector, computed here by hand, and exceeds the heavy particle's own mass.
    pt = np.array([[300.0, 200.0, 0.0]])
    eta = np.array([[0.1, -0.2, 0.0]])
    phi = np.array([[0.3, -0.1, 0.0]])
    m = np.array([[80.4, 0.0, 0.0]])
    mask = np.array([[True, True, False]])
    jet = gj.jet_from_constituents(pt, eta, phi, m, mask)
    px, py, pz, e = gj.ptetaphim_to_pxpypze(pt, eta, phi, m, mask)
    m_direct = math.sqrt(e.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2)
    assert float(jet.mass[0]) == pytest.approx(m_direct, rel=1e-12)
    assert float(jet.mass[0]) > 80.4
    # A single massive particle is its own jet.
    one = gj.jet_from_constituents(np.array([500.0]), np.array([1.2]), np.array([-2.0]), np.array([173.0]))
    assert (one.pt, one.eta, one.phi, one.mass) == pytest.approx((500.0, 1.2, -2.0, 173.0), rel=1e-9)


def test_relative_jet_mass_and_jet_from_relative():
    (pt, eta, phi, _), (jpt, jeta, jphi), mask = _random_jets(seed=11)
    zeros = np.zeros_like(pt)
    # Take the jet axis from the massless constituents themselves so that pt and eta reproduce.
    jet = gj.jet_from_constituents(pt, eta, phi, zeros, mask)
    rel = gj.to_relative(pt, eta, phi, jet.pt, jet.eta, jet.phi, mask)
    # atol: one-particle jets have mass 0 up to rounding of E^2 - p^2.
    np.testing.assert_allclose(gj.relative_jet_mass(*rel, mask), jet.mass / jet.pt, rtol=1e-9, atol=1e-6)
    rpt, reta, rm = gj.jet_from_relative(*rel, jet.pt, jet.eta, mask)
    np.testing.assert_allclose(rpt, jet.pt, rtol=1e-12)
    np.testing.assert_allclose(reta, jet.eta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, jet.mass, rtol=1e-9, atol=1e-4)
    # The relative mass does not depend on the jet axis used (longitudinal boost, rotation).
    rel2 = gj.to_relative(pt, eta, phi, jpt, jeta, jphi, mask)
    np.testing.assert_allclose(gj.relative_jet_mass(*rel2, mask) * jpt, jet.mass, rtol=1e-9, atol=1e-4)


def test_empty_jet_is_all_zero():
    z = np.zeros((2, 3))
    jet = gj.jet_from_constituents(z, z, z, z, np.zeros((2, 3), bool))
    for name in ("pt", "eta", "phi", "mass", "energy"):
        np.testing.assert_array_equal(getattr(jet, name), 0.0)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_delta_r_wraps_phi_and_follows_the_array_library(lib):
    eta1, phi1 = np.array([0.0, 1.0, -0.5]), np.array([3.0, 0.2, -3.1])
    eta2, phi2 = np.array([0.0, -2.0, 0.7]), np.array([-3.0, 0.2, 3.1])
    want = np.hypot(eta1 - eta2, [2 * math.pi - 6.0, 0.0, 2 * math.pi - 6.2])  # across the +-pi edge
    args = (eta1, phi1, eta2, phi2) if lib == "numpy" else tuple(torch.from_numpy(a) for a in (eta1, phi1, eta2, phi2))
    got = gj.delta_r(*args)
    assert isinstance(got, np.ndarray if lib == "numpy" else torch.Tensor)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


def test_a_mass_from_rounding_below_zero_is_zero_and_a_real_one_is_kept():
    pt, eta = np.array([10.0, 10.0]), np.array([0.3, 0.3])
    p = pt * np.cosh(eta)
    e = np.array([p[0] * (1 - 1e-12), math.hypot(p[1], 0.5)])  # E < |p| by rounding; m = 0.5
    np.testing.assert_allclose(gj.mass_from_energy(pt, eta, e), [0.0, 0.5], atol=1e-9)
    px, py, pz, en = gj.ptetaphim_to_pxpypze(pt, eta, np.zeros(2), np.array([0.0, 0.5]))
    np.testing.assert_allclose(gj.pxpypze_to_ptetaphim(px, py, pz, en * np.array([1 - 1e-12, 1.0]))[3], [0.0, 0.5],
                               atol=1e-6)
