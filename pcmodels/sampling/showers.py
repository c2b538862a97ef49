"""Generated showers made valid: cells in the grid, alpha where a model does not learn it, one hit
per cell, energies never negative; and the incident energies to generate for.

A shower model's data plan names its finishing step (:data:`FINISHERS`):

- ``mdma-showers`` (seed-models.md §1): the cells (floored by the inverse transforms) clamped into
  the grid, alpha turned by one random whole number of bins per shower (the rotational symmetry
  the reference adds at sampling), hits with no energy dropped.
- ``calopointflow`` (§3.1): alpha assigned at random per hit: the hits that share a (layer, r)
  cell are cut into groups of at most ``n_alpha``, and the hits of a group get distinct alpha bins
  drawn without replacement; then each shower is renormalised to its sampled energy sum.

Both end with :func:`merge_cells`: hits that fall into one cell are summed (in float64), and the
shower fields ``num_points`` and ``energy_sum`` are recomputed from what is kept.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from pcdata import Clouds
from pcdata.geometry.calo import CaloGeometry, get_geometry

from ..errors import ConfigError

__all__ = ["FINISHERS", "finish_showers", "merge_cells", "incident_energies", "LOG_UNIFORM_MEV"]

#: The CaloChallenge ds2/ds3 incident energies: log-uniform between 1 GeV and 1 TeV (MeV).
LOG_UNIFORM_MEV = (1e3, 1e6)
_CELLS = ("layer", "alpha_bin", "r_bin")


def _column(points: np.ndarray, features: tuple[str, ...], name: str) -> np.ndarray | None:
    return points[:, features.index(name)] if name in features else None


def _grid(geo: CaloGeometry, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamped layers, and the number of alpha and r bins of each hit's layer."""
    n_alpha = np.array([len(geo.alpha_edges_of(i)) - 1 for i in range(geo.n_layers)], dtype=np.int64)
    layer = np.clip(layer, 0, geo.n_layers - 1)
    return layer, n_alpha[layer], np.asarray(geo.n_r, dtype=np.int64)[layer]


def merge_cells(shower: np.ndarray, layer: np.ndarray, alpha: np.ndarray, r: np.ndarray, energy: np.ndarray,
                num: int, fields: dict[str, np.ndarray]) -> Clouds:
    """One hit per cell (energies summed in float64), hits ordered by shower then cell, the
    fields ``num_points`` and ``energy_sum`` recomputed; ``num`` showers (some may be empty)."""
    keep = energy > 0
    shower, layer, alpha, r, energy = shower[keep], layer[keep], alpha[keep], r[keep], energy[keep]
    # One integer per (shower, layer, alpha, r): a 1-d unique is many times faster than np.unique(axis=1).
    na, nr = int(alpha.max(initial=0)) + 1, int(r.max(initial=0)) + 1
    nl = int(layer.max(initial=0)) + 1
    key = ((shower * nl + layer) * na + alpha) * nr + r
    uniq, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=energy.astype(np.float64), minlength=len(uniq))
    u_r = uniq % nr
    u_alpha = (uniq // nr) % na
    u_layer = (uniq // (nr * na)) % nl
    u_shower = uniq // (nr * na * nl)
    counts = np.bincount(u_shower, minlength=num)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    points = np.stack([u_layer, u_alpha, u_r, summed], axis=1).astype(np.float32)
    out = dict(fields)
    out["num_points"] = counts.astype(np.int64)
    out["energy_sum"] = np.bincount(u_shower, weights=summed, minlength=num)
    return Clouds(points, offsets, out, (*_CELLS, "energy"))


def _finish_mdma(points, features, offsets, fields, geo: CaloGeometry, rng: np.random.Generator) -> Clouds:
    num = len(offsets) - 1
    shower = np.repeat(np.arange(num), np.diff(offsets))
    layer, n_alpha, n_r = _grid(geo, np.floor(_column(points, features, "layer")).astype(np.int64))
    alpha = np.clip(np.floor(_column(points, features, "alpha_bin")).astype(np.int64), 0, n_alpha - 1)
    r = np.clip(np.floor(_column(points, features, "r_bin")).astype(np.int64), 0, n_r - 1)
    turn = rng.integers(0, 1 << 30, size=num)[shower]  # one rotation per shower
    alpha = (alpha + turn) % n_alpha
    energy = np.maximum(_column(points, features, "energy").astype(np.float64), 0.0)
    return merge_cells(shower, layer, alpha, r, energy, num, fields)


def _finish_pointflow(points, features, offsets, fields, geo: CaloGeometry, rng: np.random.Generator) -> Clouds:
    num = len(offsets) - 1
    shower = np.repeat(np.arange(num), np.diff(offsets))
    layer, n_alpha, n_r = _grid(geo, np.rint(_column(points, features, "layer")).astype(np.int64))
    r = np.clip(np.rint(_column(points, features, "r_bin")).astype(np.int64), 0, n_r - 1)
    energy = np.maximum(_column(points, features, "energy").astype(np.float64), 0.0)
    alpha = _assign_alpha(shower, layer, r, n_alpha, rng)
    clouds = merge_cells(shower, layer, alpha, r, energy, num, fields)
    # Renormalise each shower to its sampled energy sum (the reference's last step).
    target = np.asarray(fields["energy_sum"], dtype=np.float64)
    have = clouds.fields["energy_sum"]
    scale = np.where(have > 0, target / np.where(have > 0, have, 1.0), 0.0)
    pts = clouds.points.copy()
    e = pts[:, 3].astype(np.float64) * np.repeat(scale, clouds.counts)
    pts[:, 3] = e.astype(np.float32)
    out = dict(clouds.fields)
    out["energy_sum"] = np.bincount(np.repeat(np.arange(num), clouds.counts), weights=pts[:, 3].astype(np.float64),
                                    minlength=num)
    return Clouds(pts, clouds.offsets, out, clouds.point_features)


def _assign_alpha(shower, layer, r, n_alpha, rng: np.random.Generator) -> np.ndarray:
    """Random alpha bins, distinct among the hits of one group (at most ``n_alpha`` hits of one
    (shower, layer, r) cell)."""
    m = len(shower)
    alpha = np.zeros(m, dtype=np.int64)
    if not m:
        return alpha
    order = np.lexsort((r, layer, shower))
    s, l, rr = shower[order], layer[order], r[order]
    new_cell = np.ones(m, dtype=bool)
    new_cell[1:] = (s[1:] != s[:-1]) | (l[1:] != l[:-1]) | (rr[1:] != rr[:-1])
    cell_start = np.maximum.accumulate(np.where(new_cell, np.arange(m), 0))
    rank = np.arange(m) - cell_start  # position of the hit inside its cell
    na = n_alpha[order]
    group = rank // na  # the group inside the cell
    pos = rank % na
    # A group of one hit takes a uniform bin; larger groups take the first bins of a permutation.
    _, gid, size = np.unique(cell_start * (int(group.max()) + 1) + group, return_inverse=True, return_counts=True)
    gid = gid.reshape(-1)
    single = size[gid] == 1
    out = np.empty(m, dtype=np.int64)
    out[single] = rng.integers(0, na[single])
    multi = np.flatnonzero(~single)
    if len(multi):
        width = int(na[multi].max())
        groups, first = np.unique(gid[multi], return_inverse=True)
        keys = rng.random((len(groups), width))
        keys[np.arange(width)[None, :] >= na[multi][np.unique(first, return_index=True)[1]][:, None]] = np.inf
        perm = np.argsort(keys, axis=1)
        out[multi] = perm[first, pos[multi]]
    alpha[order] = out
    return alpha


#: Finishing steps by the name a data plan gives (:mod:`pcmodels.data`).
FINISHERS: dict[str, Callable[..., Clouds]] = {"mdma-showers": _finish_mdma, "calopointflow": _finish_pointflow}


def finish_showers(name: str, points: np.ndarray, features: tuple[str, ...], offsets: np.ndarray,
                   fields: dict[str, np.ndarray], geometry: str, rng: np.random.Generator) -> Clouds:
    """Valid shower clouds (``layer, alpha_bin, r_bin, energy``) from generated points in physical
    units (``features`` as the model loads them)."""
    if name not in FINISHERS:
        raise ConfigError(f"unknown finishing step {name!r} (known: {', '.join(FINISHERS)})")
    return FINISHERS[name](points, tuple(features), np.asarray(offsets), fields, get_geometry(geometry), rng)


def incident_energies(source: str, num: int, *, generator: torch.Generator, split: str | None = "test") -> np.ndarray:
    """``num`` incident energies (MeV) to generate for: ``log-uniform`` (1 GeV to 1 TeV, as the
    CaloChallenge ds2/ds3 files), or the first ``num`` of a real sample (a shower store, its
    ``split``; or a CaloChallenge HDF5 file).

    Raises:
        ConfigError: an unreadable source, or fewer showers than ``num``.
    """
    if source == "log-uniform":
        lo, hi = np.log(LOG_UNIFORM_MEV[0]), np.log(LOG_UNIFORM_MEV[1])
        u = torch.rand(num, generator=generator, dtype=torch.float64).numpy()
        return np.exp(lo + (hi - lo) * u)
    if os.path.isfile(source):
        from pcdata.errors import SourceError
        from pcdata.sources._hdf5 import open_hdf5

        try:
            with open_hdf5(source) as f:
                e = np.asarray(f["incident_energies"][:num], dtype=np.float64).reshape(-1)
        except KeyError:
            raise ConfigError(f"incident: {source}: no incident_energies dataset (not a CaloChallenge file)") from None
        except SourceError as err:
            raise ConfigError(f"incident: {err}") from None
        except (OSError, ValueError) as err:
            raise ConfigError(f"incident: {source}: {err}") from None
        what = "the file"
    else:
        from pcdata import open_store
        from pcdata.errors import PcdataError

        try:
            store = open_store(source)
            rows = store.indices(split)
            e = np.asarray(store.field("incident_energy")[rows[:num]], dtype=np.float64)
        except (PcdataError, KeyError, ValueError, OSError) as err:
            raise ConfigError(f"incident: {source}: {str(err.args[0]) if err.args else err}") from None
        what = f"its {split} split" if split else "the store"
    if len(e) < num:
        raise ConfigError(f"incident: {source}: {what} holds {len(e)} showers, fewer than num={num}")
    if not np.all(np.isfinite(e) & (e > 0)):
        raise ConfigError(f"incident: {source}: incident energies must be finite and positive")
    return e
