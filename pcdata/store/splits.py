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
    # In-place array arithmetic wraps silently (numpy checks overflow of scalars only).
    z = np.array(x, dtype=np.uint64)
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def split_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """The split key of each cloud index."""
    with np.errstate(over="ignore"):  # the scalar product wraps, as the format says
        offset = np.uint64(seed) * _GOLDEN
    # int64 first: the same bits as a direct cast for every integer input.
    keys = np.asarray(ids, dtype=np.int64).astype(np.uint64)  # pragma: no mutate
    keys += offset
    return splitmix64(keys)


def _rank_cuts(n: int, spec: SplitSpec) -> list[int]:
    """Cumulative cloud counts of the rank method: ``floor(n * c_s)``, the last at n."""
    cuts, acc = [0], 0.0
    for _, frac in spec.fractions:
        acc += frac
        cuts.append(min(n, int(np.floor(n * acc + 1e-9))))  # 1e-9: 90 x 0.7 is 62.99999... in floats
    cuts[-1] = n  # whatever the float sum of the fractions
    return cuts


def _keys_at_ranks(n: int, seed: int, ranks: list[int]) -> list[int]:
    """The keys of ranks ``ranks`` among the keys of clouds ``0..n-1`` (one selection)."""
    if not ranks:
        return []
    keys = np.concatenate([split_keys(np.arange(a, min(n, a + _SPAN)), seed) for a in range(0, n, _SPAN)])
    part = np.partition(keys, ranks)
    return [int(part[r]) for r in ranks]


def split_cuts(n: int, spec: SplitSpec) -> dict[str, tuple[int, int]]:
    """The key interval ``[lo, hi)`` of every split of a store of ``n`` clouds; bounds at 2**64 or
    above lie past every key."""
    if spec.method == THRESHOLD:
        bounds, acc = [0], 0.0
        for _, frac in spec.fractions:
            acc += frac
            bounds.append(int(acc * 2.0**64))  # a float times a power of two: exact
        bounds[-1] = 1 << 64  # the last split ends past every key
    else:
        # Keys are distinct (splitmix64 is a bijection), so the rank cuts are key cuts: the key of
        # the cloud at each cut rank opens the next split.
        ranks = _rank_cuts(n, spec)
        inner = sorted({r for r in ranks if 0 < r < n})  # pragma: no mutate (rank 0 is bound 0 anyway)
        kth = dict(zip(inner, _keys_at_ranks(n, spec.seed, inner)))
        bounds = [0 if r <= 0 else 1 << 64 if r >= n else kth[r] for r in ranks]
    return {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(spec.names)}


def split_member(ids: np.ndarray, seed: int, cut: tuple[int, int]) -> np.ndarray:
    """Which of the clouds ``ids`` hold a key in ``cut`` (a :func:`split_cuts` interval)."""
    keys = split_keys(ids, seed)
    lo, hi = cut
    if lo >= 1 << 64:  # past every key (an empty last split)
        return np.zeros(len(keys), dtype=bool)
    inside = keys >= np.uint64(lo)
    if hi < 1 << 64:
        inside &= keys < np.uint64(hi)
    return inside


def split_indices(n: int, spec: SplitSpec) -> dict[str, np.ndarray]:
    """Sorted cloud indices of every split of a store of ``n`` clouds."""
    cuts = split_cuts(n, spec)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in spec.names}
    for a in range(0, n, _SPAN):
        ids = np.arange(a, min(n, a + _SPAN), dtype=np.int64)  # pragma: no mutate (arange's default is int64)
        for name, cut in cuts.items():
            parts[name].append(ids[split_member(ids, spec.seed, cut)])
    return {name: np.concatenate(p) if p else np.zeros(0, np.int64) for name, p in parts.items()}


def split_sizes(n: int, spec: SplitSpec) -> dict[str, int]:
    """Number of clouds in each split (exact for the rank method; counted for the threshold one)."""
    if spec.method == RANK:
        ranks = _rank_cuts(n, spec)
        return {name: ranks[i + 1] - ranks[i] for i, name in enumerate(spec.names)}
    return {name: len(v) for name, v in split_indices(n, spec).items()}
