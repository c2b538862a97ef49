"""The real-vs-real floor's two samples: disjoint halves of the real sample."""

from __future__ import annotations

import numpy as np

__all__ = ["floor_halves"]


def floor_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, sorted, equally large random halves of ``range(n)`` (``n // 2`` each; an odd
    last row is left out), so that the floor compares samples of one size that share no row."""
    order = rng.permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half:2 * half])
