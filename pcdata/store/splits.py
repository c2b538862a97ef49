"""Deterministic named splits, decided per cloud.

Cloud ``i`` gets the 64-bit key ``splitmix64(i + seed * golden)`` (golden = 0x9E3779B97F4A7C15,
wrapping unsigned arithmetic). Each split owns an interval ``[lo, hi)`` of keys, so whether a cloud
is in a split is known from its index alone, with no sort over the store: the same assignment on
every machine, numpy version and store layout (it depends on the cloud's index only, not on
fragments or chunking). Two methods place the intervals:

- ``splitmix64-threshold-v1`` (the default): the cut after split ``s`` is ``floor(c_s * 2**64)``,
  ``c_s`` its cumulative fraction; split sizes are binomial around ``n * fraction``. Nothing is
  computed over the store, whatever its size.
- ``splitmix64-rank-v1`` (stores written before): clouds ranked by key are cut at
  ``floor(n * c_s)``, so split sizes are exact; the equivalent key cuts are found with one
  selection over all ``n`` keys (O(n) time and 8n bytes, once per open store).
"""

from __future__ import annotations

import numpy as np

from .format import SplitSpec

__all__ = ["splitmix64", "split_keys", "split_cuts", "split_member", "split_indices", "split_sizes",
           "RANK", "THRESHOLD"]

RANK, THRESHOLD = "splitmix64-rank-v1", "splitmix64-threshold-v1"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SPAN = 1 << 22  # clouds hashed at a time by whole-store passes (32 MB of keys)


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


def split_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """The split key of each cloud index."""
    with np.errstate(over="ignore"):
        return splitmix64(np.asarray(ids, dtype=np.int64).astype(np.uint64) + np.uint64(seed) * _GOLDEN)


def _rank_cuts(n: int, spec: SplitSpec) -> list[int]:
    """Cumulative cloud counts of the rank method: ``floor(n * c_s)``, the last at n."""
    cuts, acc = [0], 0.0
    for i, (_, frac) in enumerate(spec.fractions):
        acc += frac
        cuts.append(n if i == len(spec.fractions) - 1 else min(n, int(np.floor(n * acc + 1e-9))))
    return cuts


def split_cuts(n: int, spec: SplitSpec) -> dict[str, tuple[int, int]]:
    """The key interval ``[lo, hi)`` of every split of a store of ``n`` clouds (``hi`` up to 2**64)."""
    bounds = [0]
    if spec.method == THRESHOLD:
        acc = 0.0
        for i, (_, frac) in enumerate(spec.fractions):
            acc += frac
            # The float times a power of two is exact; the last split ends past every key.
            bounds.append(1 << 64 if i == len(spec.fractions) - 1 else min(1 << 64, int(min(acc, 1.0) * 2.0**64)))
    else:
        # Keys are distinct (splitmix64 is a bijection), so the rank cuts are key cuts: the key of
        # the cloud at each cut rank opens the next split.
        ranks = _rank_cuts(n, spec)
        inner = sorted({r for r in ranks[1:-1] if 0 < r < n})
        kth = {}
        if inner:
            keys = np.concatenate([split_keys(np.arange(a, min(n, a + _SPAN)), spec.seed) for a in range(0, n, _SPAN)])
            part = np.partition(keys, inner)
            kth = {r: int(part[r]) for r in inner}
            del keys, part
        for r in ranks[1:]:
            bounds.append(0 if r <= 0 else 1 << 64 if r >= n else kth[r])
    return {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(spec.names)}


def split_member(ids: np.ndarray, seed: int, cut: tuple[int, int]) -> np.ndarray:
    """Which of the clouds ``ids`` hold a key in ``cut`` (a :func:`split_cuts` interval)."""
    keys = split_keys(ids, seed)
    lo, hi = cut
    if lo >= 1 << 64 or lo >= hi:  # an empty interval (a split of fraction 0)
        return np.zeros(len(keys), dtype=bool)
    inside = keys >= np.uint64(lo) if lo > 0 else np.ones(len(keys), dtype=bool)
    if hi < 1 << 64:
        inside &= keys < np.uint64(hi)
    return inside


def split_indices(n: int, spec: SplitSpec) -> dict[str, np.ndarray]:
    """Sorted cloud indices of every split of a store of ``n`` clouds."""
    cuts = split_cuts(n, spec)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in spec.names}
    for a in range(0, n, _SPAN):
        ids = np.arange(a, min(n, a + _SPAN), dtype=np.int64)
        for name, cut in cuts.items():
            parts[name].append(ids[split_member(ids, spec.seed, cut)])
    return {name: np.concatenate(p) if p else np.zeros(0, np.int64) for name, p in parts.items()}


def split_sizes(n: int, spec: SplitSpec) -> dict[str, int]:
    """Number of clouds in each split (exact for the rank method; counted for the threshold one)."""
    if spec.method == RANK:
        ranks = _rank_cuts(n, spec)
        return {name: ranks[i + 1] - ranks[i] for i, name in enumerate(spec.names)}
    return {name: len(v) for name, v in split_indices(n, spec).items()}
