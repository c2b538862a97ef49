"""Deterministic named splits.

Each cloud index gets a 64-bit key from the splitmix64 finaliser of ``index + seed * golden``;
clouds are ranked by key and the ranking is cut at the cumulative fractions. Pure unsigned integer
arithmetic: the same assignment on every machine, numpy version and store layout (it depends on
the cloud's index only, not on fragments or chunking).
"""

from __future__ import annotations

import numpy as np

from .format import SplitSpec

__all__ = ["splitmix64", "split_indices", "split_sizes"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser applied elementwise to a uint64 array (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


def split_sizes(n: int, spec: SplitSpec) -> dict[str, int]:
    """Number of clouds in each split: cuts at ``floor(n * cumulative fraction)``, the last at n."""
    cuts = [0]
    acc = 0.0
    for i, (_, frac) in enumerate(spec.fractions):
        acc += frac
        cuts.append(n if i == len(spec.fractions) - 1 else min(n, int(np.floor(n * acc + 1e-9))))
    return {name: cuts[i + 1] - cuts[i] for i, name in enumerate(spec.names)}


def split_indices(n: int, spec: SplitSpec) -> dict[str, np.ndarray]:
    """Sorted cloud indices of every split of a store of ``n`` clouds."""
    with np.errstate(over="ignore"):
        keys = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(spec.seed) * _GOLDEN)
    order = np.argsort(keys, kind="stable")
    out, start = {}, 0
    for name, size in split_sizes(n, spec).items():
        out[name] = np.sort(order[start : start + size])
        start += size
    return out
