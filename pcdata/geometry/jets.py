"""Jet coordinates: absolute (pt, eta, phi, m) <-> relative hadronic (etarel, phirel, ptrel).

Every function is vectorised over whole arrays and works on numpy arrays and torch tensors
alike (the array type of the first argument picks the library; mixing them is not supported).
Constituent arrays have shape ``[..., P]``; jet arrays have the leading shape ``[...]`` and are
broadcast over the constituent axis. An optional boolean ``mask`` ``[..., P]`` marks the real
constituents of zero-padded arrays: masked-out entries come back as exactly 0 and never enter a sum.

Conventions (those of JetNet, see ``pcdata.sources.jetnet``):

- ``etarel = eta - eta_jet``; ``phirel = phi - phi_jet`` wrapped into ``[-pi, pi)``;
  ``ptrel = pt / pt_jet``, with ``pt_jet`` the transverse momentum of the jet's four-vector sum.
- eta is the pseudorapidity; masses and energies in GeV.
- Relative coordinates carry no constituent mass: sums over them treat constituents as massless,
  as ``jetnet`` does for its jet-mass metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "JetKinematics",
    "wrap_phi",
    "delta_r",
    "to_relative",
    "to_absolute",
    "ptetaphim_to_pxpypze",
    "pxpypze_to_ptetaphim",
    "energy_from_mass",
    "mass_from_energy",
    "jet_from_constituents",
    "jet_from_relative",
    "relative_jet_mass",
]

TWO_PI = 2.0 * math.pi


def _is_torch(x: Any) -> bool:
    # Checked by module name so that numpy-only users never import torch.
    return type(x).__module__.startswith("torch")


class _Numpy:
    """The handful of array operations this module needs, numpy flavour."""

    where = staticmethod(np.where)
    sqrt = staticmethod(np.sqrt)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    arcsinh = staticmethod(np.arcsinh)
    arctan2 = staticmethod(np.arctan2)
    floor = staticmethod(np.floor)
    hypot = staticmethod(np.hypot)

    @staticmethod
    def asarray(x):
        x = np.asarray(x)
        return x if x.dtype.kind == "f" else x.astype(np.float64)

    @staticmethod
    def clip_min(x, lo):
        return np.maximum(x, lo)

    @staticmethod
    def sum(x, axis):
        return np.sum(x, axis=axis)

    @staticmethod
    def zeros_like(x):
        return np.zeros_like(x)


class _Torch:
    """The same operations, torch flavour (imported only when a tensor is passed)."""

    def __init__(self) -> None:
        import torch

        self.t = torch
        self.where = torch.where
        self.sqrt = torch.sqrt
        self.cos = torch.cos
        self.sin = torch.sin
        self.sinh = torch.sinh
        self.cosh = torch.cosh
        self.arcsinh = torch.asinh
        self.arctan2 = torch.atan2
        self.floor = torch.floor
        self.hypot = torch.hypot

    def asarray(self, x):
        x = self.t.as_tensor(x)
        return x if x.is_floating_point() else x.to(self.t.get_default_dtype())

    def clip_min(self, x, lo):
        return self.t.clamp(x, min=lo)

    def sum(self, x, axis):
        return self.t.sum(x, dim=axis)

    def zeros_like(self, x):
        return self.t.zeros_like(x)


_NUMPY = _Numpy()
_TORCH: _Torch | None = None


def _xp(x: Any):
    """The operations namespace for ``x``'s array library."""
    global _TORCH
    if _is_torch(x):
        if _TORCH is None:
            _TORCH = _Torch()
        return _TORCH
    return _NUMPY


def _masked(xp, mask, value):
    """``value`` where ``mask`` is set, exactly 0 elsewhere (``mask`` None: ``value`` unchanged)."""
    if mask is None:
        return value
    return xp.where(mask, value, xp.zeros_like(value))


def _safe_pt(xp, pt):
    # eta = asinh(pz / pt) is undefined for pt == 0 (padding, empty jets): divide by 1 instead
    # and let the caller's mask (or the zero pz of an empty sum) give eta = 0.
    return xp.where(pt > 0, pt, xp.zeros_like(pt) + 1)


# -- angles -----------------------------------------------------------------------------------------


def wrap_phi(phi):
    """Wrap angles into ``[-pi, pi)``.

    Args:
        phi: angles in radians, any shape (numpy array or torch tensor).

    Returns:
        The same angles modulo 2 pi, in ``[-pi, pi)``, same type and dtype.
    """
    xp = _xp(phi)
    phi = xp.asarray(phi)
    wrapped = phi - TWO_PI * xp.floor((phi + math.pi) / TWO_PI)
    # Rounding (2 pi is inexact, in float32 badly so) can land a hair outside: on +pi for
    # phi = -pi - tiny, or just below -pi. Fold those back; pi is compared in the array's dtype.
    wrapped = xp.where(wrapped < -math.pi, wrapped + TWO_PI, wrapped)
    return xp.where(wrapped >= math.pi, wrapped - TWO_PI, wrapped)


def delta_r(eta1, phi1, eta2, phi2):
    """Distance ``sqrt(deta^2 + dphi^2)`` in the (eta, phi) plane, with dphi wrapped."""
    xp = _xp(eta1)
    return xp.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))


# -- relative <-> absolute ------------------------------------------------------------------------


def to_relative(pt, eta, phi, jet_pt, jet_eta, jet_phi, mask=None):
    """Absolute constituent coordinates to relative hadronic coordinates around a jet axis.

    Args:
        pt, eta, phi: constituents, shape ``[..., P]``.
        jet_pt, jet_eta, jet_phi: the jet axis, shape ``[...]`` (broadcast over P).
        mask: optional bool ``[..., P]``, True for real constituents; default all real.

    Returns:
        ``(etarel, phirel, ptrel)``, each ``[..., P]``; ``phirel`` in ``[-pi, pi)``; zero where
        ``mask`` is False.
    """
    xp = _xp(pt)
    pt, eta, phi = xp.asarray(pt), xp.asarray(eta), xp.asarray(phi)
    jet_pt, jet_eta, jet_phi = (xp.asarray(v)[..., None] for v in (jet_pt, jet_eta, jet_phi))
    etarel = eta - jet_eta
    phirel = wrap_phi(phi - jet_phi)
    ptrel = pt / jet_pt
    return tuple(_masked(xp, mask, v) for v in (etarel, phirel, ptrel))


def to_absolute(etarel, phirel, ptrel, jet_pt, jet_eta, jet_phi, mask=None):
    """Relative hadronic coordinates back to absolute ones (inverse of :func:`to_relative`).

    Args:
        etarel, phirel, ptrel: constituents, shape ``[..., P]``.
        jet_pt, jet_eta, jet_phi: the jet axis, shape ``[...]``.
        mask: optional bool ``[..., P]``, True for real constituents.

    Returns:
        ``(pt, eta, phi)``, each ``[..., P]``; ``phi`` in ``[-pi, pi)``; zero where ``mask`` is False.
        The constituent mass is not part of relative coordinates: keep it alongside if needed.
    """
    xp = _xp(etarel)
    etarel, phirel, ptrel = xp.asarray(etarel), xp.asarray(phirel), xp.asarray(ptrel)
    jet_pt, jet_eta, jet_phi = (xp.asarray(v)[..., None] for v in (jet_pt, jet_eta, jet_phi))
    pt = ptrel * jet_pt
    eta = etarel + jet_eta
    phi = wrap_phi(phirel + jet_phi)
    return tuple(_masked(xp, mask, v) for v in (pt, eta, phi))


# -- four-vectors ---------------------------------------------------------------------------------


def ptetaphim_to_pxpypze(pt, eta, phi, m, mask=None):
    """``(pt, eta, phi, m)`` to Cartesian ``(px, py, pz, E)``; zero where ``mask`` is False."""
    xp = _xp(pt)
    pt, eta, phi, m = (xp.asarray(v) for v in (pt, eta, phi, m))
    px = pt * xp.cos(phi)
    py = pt * xp.sin(phi)
    pz = pt * xp.sinh(eta)
    # |p| = pt cosh(eta); E = sqrt(|p|^2 + m^2), written with hypot to avoid overflow.
    e = xp.hypot(pt * xp.cosh(eta), m)
    return tuple(_masked(xp, mask, v) for v in (px, py, pz, e))


def pxpypze_to_ptetaphim(px, py, pz, e, mask=None):
    """Cartesian ``(px, py, pz, E)`` to ``(pt, eta, phi, m)``; zero where ``mask`` is False.

    A slightly negative ``m^2`` from rounding gives ``m = 0``. For light particles at high
    momentum ``m`` is only as precise as ``E^2 - p^2`` allows (poor in float32).
    """
    xp = _xp(px)
    px, py, pz, e = (xp.asarray(v) for v in (px, py, pz, e))
    pt = xp.hypot(px, py)
    eta = xp.arcsinh(pz / _safe_pt(xp, pt))
    phi = wrap_phi(xp.arctan2(py, px))
    p2 = pt * pt + pz * pz
    m = xp.sqrt(xp.clip_min((e - xp.sqrt(p2)) * (e + xp.sqrt(p2)), 0.0))
    return tuple(_masked(xp, mask, v) for v in (pt, eta, phi, m))


def energy_from_mass(pt, eta, m):
    """Energy of a particle given ``(pt, eta, m)``: ``sqrt((pt cosh eta)^2 + m^2)``."""
    xp = _xp(pt)
    return xp.hypot(xp.asarray(pt) * xp.cosh(xp.asarray(eta)), xp.asarray(m))


def mass_from_energy(pt, eta, e):
    """Mass of a particle given ``(pt, eta, E)``; 0 where rounding makes ``E < |p|``."""
    xp = _xp(pt)
    p = xp.asarray(pt) * xp.cosh(xp.asarray(eta))
    e = xp.asarray(e)
    return xp.sqrt(xp.clip_min((e - p) * (e + p), 0.0))


# -- jets from constituents -----------------------------------------------------------------------


@dataclass(frozen=True)
class JetKinematics:
    """A jet's four-vector as ``(pt, eta, phi, mass, energy)``, each of shape ``[...]``."""

    pt: Any
    eta: Any
    phi: Any
    mass: Any
    energy: Any


def jet_from_constituents(pt, eta, phi, m, mask=None) -> JetKinematics:
    """The jet four-vector as the sum of its constituents' four-vectors (E-scheme).

    Args:
        pt, eta, phi, m: constituents in absolute coordinates, shape ``[..., P]``.
        mask: optional bool ``[..., P]``, True for real constituents.

    Returns:
        :class:`JetKinematics` with arrays of shape ``[...]``; an empty jet has all zeros.
    """
    xp = _xp(pt)
    px, py, pz, e = ptetaphim_to_pxpypze(pt, eta, phi, m, mask)
    jpx, jpy, jpz, je = (xp.sum(v, -1) for v in (px, py, pz, e))
    jpt, jeta, jphi, jm = pxpypze_to_ptetaphim(jpx, jpy, jpz, je)
    return JetKinematics(pt=jpt, eta=jeta, phi=jphi, mass=jm, energy=je)


def relative_jet_mass(etarel, phirel, ptrel, mask=None):
    """The jet mass over the jet pT, ``m / pt_jet``, from relative coordinates.

    Constituents are taken as massless (relative coordinates hold no mass), as ``jetnet`` does.
    A shift in eta of massless particles is a longitudinal boost, so the result does not depend on
    the jet axis: it is the massless jet mass divided by ``pt_jet``.

    Args:
        etarel, phirel, ptrel: shape ``[..., P]``.
        mask: optional bool ``[..., P]``.

    Returns:
        ``m / pt_jet``, shape ``[...]``.
    """
    xp = _xp(etarel)
    zeros = xp.zeros_like(xp.asarray(ptrel))
    return jet_from_constituents(ptrel, etarel, phirel, zeros, mask).mass


def jet_from_relative(etarel, phirel, ptrel, jet_pt, jet_eta, mask=None):
    """Jet ``(pt, eta, mass)`` from relative constituents and the jet's pt and eta.

    The constituents are put back at ``pt = ptrel * jet_pt``, ``eta = etarel + jet_eta`` (phi
    does not matter: the sum is invariant under rotations about the beam), taken as massless and
    summed. For a jet whose constituents are all present, the returned pt and eta equal the inputs
    up to rounding (pt and pz do not depend on the constituent masses); the mass is the massless
    approximation of the true jet mass.

    Args:
        etarel, phirel, ptrel: shape ``[..., P]``.
        jet_pt, jet_eta: shape ``[...]``.
        mask: optional bool ``[..., P]``.

    Returns:
        ``(pt, eta, mass)``, each of shape ``[...]``.
    """
    xp = _xp(etarel)
    jet_pt, jet_eta = xp.asarray(jet_pt)[..., None], xp.asarray(jet_eta)[..., None]
    etarel, ptrel = xp.asarray(etarel), xp.asarray(ptrel)
    pt = _masked(xp, mask, ptrel * jet_pt)
    eta = _masked(xp, mask, etarel + jet_eta)
    jet = jet_from_constituents(pt, eta, phirel, xp.zeros_like(pt), mask)
    return jet.pt, jet.eta, jet.mass
