"""Shared builders for the tests: small valid input files and stores made on the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pcdata.sources.jetnet import write_jetnet_hdf5

__all__ = ["synthetic_jetnet_arrays", "make_jetnet_file"]


def synthetic_jetnet_arrays(n_jets: int, num_particles: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Layout-valid JetNet arrays with jet-like shapes (not physics: for format and pipeline tests).

    Multiplicities span 1..~2P so some jets are truncated (num_particles > P), particles are sorted
    by descending ptrel, padding is zero.
    """
    rng = np.random.default_rng(seed)
    total = rng.integers(1, 2 * num_particles, size=n_jets)
    kept = np.minimum(total, num_particles)
    pf = np.zeros((n_jets, num_particles, 4), dtype=np.float32)
    mask = np.arange(num_particles)[None, :] < kept[:, None]
    pt = rng.exponential(1.0, size=(n_jets, num_particles)) * mask
    pt = -np.sort(-pt, axis=1)
    pt /= np.maximum(pt.sum(axis=1, keepdims=True), 1e-9) * 1.05
    pf[..., 0] = rng.normal(0, 0.1, size=(n_jets, num_particles)) * mask
    pf[..., 1] = rng.normal(0, 0.1, size=(n_jets, num_particles)) * mask
    pf[..., 2] = pt
    pf[..., 3] = mask
    jf = np.stack([rng.normal(1000, 50, n_jets), rng.uniform(-2, 2, n_jets), rng.normal(150, 30, n_jets), total], axis=1)
    return pf, jf.astype(np.float32)


def make_jetnet_file(path: str | Path, n_jets: int, num_particles: int = 30, seed: int = 0) -> Path:
    """Write a synthetic JetNet-layout file and return its path."""
    pf, jf = synthetic_jetnet_arrays(n_jets, num_particles, seed)
    write_jetnet_hdf5(path, pf, jf)
    return Path(path)
