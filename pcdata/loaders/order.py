"""The global order of an epoch, and each rank's and worker's share of it, computed per fragment.

Method ``fragment-blocks-lanes-window-v2``. Every rank and worker computes the same order from
(store layout, selection, seed, epoch, batch size, options) alone, with hash arithmetic
(splitmix64) rather than a stateful generator, so it is the same on every machine and numpy
version, whatever the number of ranks and workers. Nothing in it is an array over the clouds of
the store: the plan holds a few numbers per *block*, and the clouds of a batch are worked out
when the batch is asked for, from a window of the sequence around it.

1. **Blocks.** Each fragment is cut into runs of ``block_clouds`` consecutive clouds (the last one
   shorter), so a block is one contiguous read inside one fragment. The clouds of the selection
   (a split, decided per cloud: :meth:`~pcdata.Store.in_split`) in each block are counted once.
2. **Block shuffle.** Blocks holding selected clouds are ordered by a hash of (seed, epoch, block):
   their selected clouds, in store order inside each block, make the sequence ``S``.
3. **Lanes.** ``S`` is cut into ``lanes`` contiguous segments of equal length, a whole number of
   batches each; the rest (fewer than ``lanes * batch_size`` clouds) is the *tail* segment.
4. **Buffer shuffle.** In each segment the cloud at position ``p`` gets the key
   ``p + u * buffer_size`` with ``u`` uniform in [0, 1) from the hash of its position in ``S``,
   and the segment is sorted by key: no cloud moves more than ``buffer_size`` places, the reach of
   a shuffle buffer of that size. The clouds that land on ranks ``[q0, q1)`` all start within
   ``buffer_size`` of them, so sorting the positions ``[q0 - buffer, q1 + buffer)`` alone gives
   those ranks exactly (see :meth:`EpochPlan._ranked`).
5. **Bucketing** (optional). Windows of ``bucket`` batches of a segment are sorted by
   multiplicity and cut into batches; the full batches of a window are then put in hash order.
6. **Interleave.** Global batch ``k`` is batch ``k // lanes`` of lane ``k % lanes``; the tail's
   batches come last (its partial batch, if any, last of all).

Shares: global batch ``k`` belongs to rank ``k % world_size``; the rank's local batch ``j`` (from
``start``, the batches already consumed) goes to worker ``(j - start) % num_workers``.
The loader takes its workers' batches round-robin, so each rank sees its batches in global
order, and interleaving the ranks' streams batch by batch gives the global order back. A worker
touches only the lanes of its batches: when ``world_size * num_workers`` divides ``lanes`` it
reads ``1 / (world_size * num_workers)`` of the data. A worker reads its batches a *round* at a
time (:meth:`EpochPlan.round`): the pieces of the round's batches, decoded once each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..store.splits import splitmix64

__all__ = ["METHOD", "ShuffleOptions", "Layout", "EpochPlan", "Round", "fragment_blocks", "share", "hash_seed"]

METHOD = "fragment-blocks-lanes-window-v2"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1
_SPAN = 1 << 22  # clouds hashed at a time when counting a selection


@dataclass(frozen=True)
class ShuffleOptions:
    """How the shuffle trades randomness for contiguous reads and memory.

    Attributes:
        buffer_size: reach of the buffer shuffle in clouds; default ``max(2 * batch_size,
            2 * block)`` where ``block`` is the mean number of selected clouds per block, so that a
            batch draws from about five blocks. A larger buffer mixes more blocks into each batch.
        block_clouds: clouds per block; default ``None``: four points chunks' worth at the
            store's mean multiplicity (a block read decodes its two boundary chunks in part, so
            longer blocks waste less).
        lanes: parallel segments of the sequence; a worker reads only its lanes (see module doc).
        bucket: sort windows of this many batches by multiplicity (None: off), to cut padding.
    """

    buffer_size: int | None = None
    block_clouds: int | None = None
    lanes: int = 8
    bucket: int | None = None

    def __post_init__(self) -> None:
        for name in ("buffer_size", "block_clouds", "bucket"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"ShuffleOptions.{name} must be >= 1 or None, got {value}")
        if self.lanes < 1:
            raise ValueError(f"ShuffleOptions.lanes must be >= 1, got {self.lanes}")


def _arange(*args: int) -> np.ndarray:
    return np.arange(*args, dtype=np.int64)  # pragma: no mutate (numpy 2's default integer is int64 everywhere)


def _ints(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)  # pragma: no mutate (as above, for integer input)


def hash_seed(*words: int) -> int:
    """A 64-bit value mixed from integers (seed, epoch, stream...) with splitmix64."""
    state = np.uint64(0)
    with np.errstate(over="ignore"):
        for w in words:
            word = state + _GOLDEN + np.uint64(int(w) & _MASK64)
            state = splitmix64(np.array([word], dtype=np.uint64))[0]  # pragma: no mutate (a uint64 scalar's array is uint64)
    return int(state)


def _uniform_at(index: np.ndarray, *words: int) -> np.ndarray:
    """Element ``index`` of the stream of floats in [0, 1) named by ``words`` (53-bit mantissa)."""
    base = np.uint64(hash_seed(*words))
    keys = splitmix64(base + (_ints(index).astype(np.uint64) + np.uint64(1)) * _GOLDEN)  # arrays: wrap silently
    top = (keys >> np.uint64(11)).astype(np.float64)  # pragma: no mutate (float64 is astype's default)
    return top * (1.0 / (1 << 53))


def fragment_blocks(fragment_starts: np.ndarray, block_clouds: int) -> np.ndarray:
    """First global cloud of every block, then the number of clouds: ``[num_blocks + 1]``.

    Each fragment (``fragment_starts``: first cloud of each, then the total) is cut into runs of
    ``block_clouds`` clouds; a block never spans two fragments.
    """
    starts = _ints(fragment_starts)
    b = max(1, int(block_clouds))
    per = -(-np.diff(starts) // b)
    first = np.repeat(starts[:-1], per) + b * (_arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per))
    return np.append(first, starts[-1]).astype(np.int64)


@dataclass(frozen=True)
class Layout:
    """What the plan knows of the store and the selection: a few numbers per block.

    Attributes:
        blocks: first cloud of every block, then the number of clouds (:func:`fragment_blocks`).
        selected: clouds of the selection in each block.
        member: ``ids -> bool mask`` deciding the selection per cloud (None: every cloud).
    """

    blocks: np.ndarray
    selected: np.ndarray
    member: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def build(cls, blocks: np.ndarray, member: Callable[[np.ndarray], np.ndarray] | None = None) -> "Layout":
        """Count the selection in each block: a pass over the clouds' indices (hashed, never stored)."""
        blocks = _ints(blocks)
        if member is None:
            return cls(blocks, np.diff(blocks))
        n = int(blocks[-1])
        before = np.zeros(len(blocks), dtype=np.int64)  # selected clouds before each block's start
        total = 0  # pragma: no mutate (counts are differences: any start gives the same)
        for a in range(0, n, _SPAN):
            b = min(n, a + _SPAN)
            upto = np.concatenate([[0], np.cumsum(member(_arange(a, b)))])
            j0, j1 = np.searchsorted(blocks, [a, b])
            before[j0:j1] = total + upto[blocks[j0:j1] - a]
            total += int(upto[-1])
        before[-1] = total
        return cls(blocks, np.diff(before), member)

    @property
    def num_clouds(self) -> int:
        """Clouds of the selection."""
        return int(self.selected.sum())

    def select_at(self, ranks: np.ndarray) -> np.ndarray:
        """The selected clouds of the given ranks (0-based, in store order), e.g. a spread sample."""
        ranks = _ints(ranks)
        cum = np.concatenate([[0], np.cumsum(self.selected)])
        block = np.searchsorted(cum, ranks, side="right") - 1
        out = np.empty(len(ranks), dtype=np.int64)
        for j in np.unique(block):
            at = block == j
            ids = _block_ids(self, np.array([j]))[0]
            out[at] = ids[ranks[at] - cum[j]]
        return out


def _block_ids(layout: Layout, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selected clouds of ``blocks`` (in that order, store order inside each) and the position in
    ``blocks`` each came from."""
    lo, hi = layout.blocks[blocks], layout.blocks[blocks + 1]
    sizes = hi - lo
    ids = np.repeat(lo - (np.cumsum(sizes) - sizes), sizes) + _arange(int(sizes.sum()))
    which = np.repeat(_arange(len(blocks)), sizes)
    if layout.member is not None:
        keep = layout.member(ids)
        ids, which = ids[keep], which[keep]
    if len(ids) != int(layout.selected[blocks].sum()):
        raise RuntimeError("the selection of a block changed while the loader read it (store rewritten?)")
    return ids, which


@dataclass(frozen=True)
class Round:
    """The clouds of some batches, laid out for reading: what :mod:`.window` consumes.

    Attributes:
        seq: the clouds the batches need, in sequence (``S``) order, ``[m]``.
        piece: the piece of each (a run of one block inside one segment: one contiguous read).
        piece_starts: first index of each piece in ``seq``, then ``m``.
        order: indices into ``seq`` of the batches' clouds, batch after batch.
        batch_size: clouds per batch; batch ``t`` is ``order[t * batch_size:(t + 1) * batch_size]``
            (only the last may be shorter).
    """

    seq: np.ndarray
    piece: np.ndarray
    piece_starts: np.ndarray
    order: np.ndarray
    batch_size: int

    def batch(self, t: int) -> np.ndarray:
        """Indices into ``seq`` of batch ``t`` of the round."""
        return self.order[t * self.batch_size : (t + 1) * self.batch_size]


class EpochPlan:
    """One epoch's global order (see the module docstring for the method).

    Args:
        layout: blocks and selection (:class:`Layout`).
        batch_size: clouds per batch.
        shuffle: False: the selection in store order, one lane, no bucketing.
        seed, epoch: name the permutation.
        options: buffer, blocks, lanes, bucketing.
        drop_last: drop the last partial batch, and as many full batches as needed for every
            rank to get the same number (what DistributedDataParallel needs).
        world_size: number of ranks (used only by ``drop_last``).
        counts: ``ids -> points per cloud`` (needed by bucketing only).
    """

    def __init__(self, layout: Layout, *, batch_size: int, shuffle: bool, seed: int, epoch: int,
                 options: ShuffleOptions = ShuffleOptions(), drop_last: bool = False, world_size: int = 1,
                 counts: Callable[[np.ndarray], np.ndarray] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle and options.bucket and counts is None:
            raise ValueError("bucketing needs the clouds' counts")
        self.layout, self.seed, self.epoch, self.shuffle = layout, int(seed), int(epoch), bool(shuffle)
        self.batch_size = b = int(batch_size)
        self.bucket = options.bucket if shuffle else None
        self._counts = counts
        nonempty = np.flatnonzero(layout.selected)
        if shuffle and len(nonempty):
            # Hash keys of the store's block ids (not of their rank among non-empty blocks): a
            # block's place does not depend on which other blocks the split selected.
            # Float keys tie with probability ~2^-53; a stable sort defines even that case.
            nonempty = nonempty[np.argsort(_uniform_at(nonempty, seed, epoch, 1), kind="stable")]  # pragma: no mutate
        self._sblocks = nonempty
        self._scum = np.concatenate([[0], np.cumsum(layout.selected[nonempty])]).astype(np.int64)
        n = self.num_clouds = int(self._scum[-1])
        self.lanes = lanes = options.lanes if shuffle else 1
        self._m = (n // (lanes * b)) * b  # clouds per lane segment
        self._lane_batches = lanes * (self._m // b)
        self.buffer = int(options.buffer_size or max(2 * b, int(2 * n / max(1, len(nonempty)))))
        if drop_last:
            self.num_batches = (n // b // world_size) * world_size
        else:
            self.num_batches = -(-n // b)
        # Ranks of a segment are worked out a window at a time (a bucketing window, or enough
        # batches that the buffer margins on either side cost little); one window per lane is kept.
        # Any span gives the same order (the windowed ranking is exact): it trades memory for sorting.
        self._span = self.bucket * b if self.bucket else b * max(16, -(-2 * self.buffer // b))  # pragma: no mutate
        self._window: dict[int, tuple[int, np.ndarray]] = {}

    # -- segments ---------------------------------------------------------------------------------
    def _segment(self, s: int) -> tuple[int, int]:
        """(first position in ``S``, length) of segment ``s`` (``lanes``: the tail)."""
        if s < self.lanes:
            return s * self._m, self._m
        return self.lanes * self._m, self.num_clouds - self.lanes * self._m

    def _where(self, k: int) -> tuple[int, int, int]:
        """(segment, first rank, end rank) of global batch ``k``."""
        b = self.batch_size
        if k < self._lane_batches:
            q0 = (k // self.lanes) * b
            return k % self.lanes, q0, q0 + b
        q0 = (k - self._lane_batches) * b
        return self.lanes, q0, min(q0 + b, self._segment(self.lanes)[1])

    def _ranked(self, s: int, q0: int, q1: int) -> np.ndarray:
        """Positions in ``S`` of ranks ``[q0, q1)`` of segment ``s`` after the buffer shuffle.

        A cloud at position ``p`` ends at a rank within ``buffer`` of ``p`` (at most ``buffer``
        keys can pass it either way), so every cloud of ranks ``[q0, q1)`` lies in
        ``[q0 - buffer, q1 + buffer)``, and every cloud before that range ranks before ``q0``:
        sorting that range alone gives the ranks exactly, ties in store order as a full sort would.
        """
        start, length = self._segment(s)
        if not self.shuffle:
            return start + _arange(q0, q1)
        w0, w1 = max(0, q0 - self.buffer), min(length, q1 + self.buffer)
        pos = _arange(w0, w1)
        key = pos + _uniform_at(start + pos, self.seed, self.epoch, 2) * self.buffer
        order = np.argsort(key, kind="stable")  # pragma: no mutate (ties: probability ~2^-53, as above)
        return start + w0 + order[q0 - w0 : q1 - w0]

    def _window_of(self, s: int, w: int) -> np.ndarray:
        """Positions in ``S`` of window ``w`` of segment ``s`` in final order (cached per segment)."""
        cached = self._window.get(s)  # pragma: no mutate (a cache: recomputing gives the same window)
        if cached is not None and cached[0] == w:
            return cached[1]
        start, length = self._segment(s)
        r0, r1 = w * self._span, min(length, (w + 1) * self._span)
        pos = self._ranked(s, r0, r1)
        if self.bucket:
            b = self.batch_size
            pos = pos[np.argsort(self._counts(self.ids(pos)[0]), kind="stable")]
            place = _arange(len(pos))
            batch = (start + r0 + place) // b  # pragma: no mutate (a float quotient keys the same batch)
            # The partial last batch of the tail keeps its place at the very end.
            # Batches numbered over all segments in sequence order; the partial last batch keys above 1: last.
            key = np.where(batch < self.num_clouds // b, _uniform_at(batch, self.seed, self.epoch, 3), 2.0)
            pos = pos[np.lexsort((place, key))]
        self._window[s] = (w, pos)  # pragma: no mutate (as above)
        return pos

    def positions(self, k: int) -> np.ndarray:
        """Positions in ``S`` of the clouds of global batch ``k``, in batch order."""
        if not 0 <= k < self.num_batches:
            raise IndexError(f"batch {k} out of range for an epoch of {self.num_batches} batches")
        s, q0, q1 = self._where(int(k))
        w = q0 // self._span
        return self._window_of(s, w)[q0 - w * self._span : q1 - w * self._span]

    # -- clouds -----------------------------------------------------------------------------------
    def ids(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cloud, block in ``S``) at positions of ``S``, which should lie close together (one
        window): the blocks between the first and last are enumerated."""
        pos = _ints(positions)
        if not len(pos):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lo, hi = int(pos.min()), int(pos.max())
        i0, i1 = np.searchsorted(self._scum, [lo, hi], side="right") - 1
        spans = _arange(i0, i1 + 1)
        ids, which = _block_ids(self.layout, self._sblocks[spans])
        at = pos - self._scum[i0]
        return ids[at], spans[which[at]]

    def batch(self, k: int) -> np.ndarray:
        """Global cloud indices of batch ``k``, in batch order."""
        return self.ids(self.positions(k))[0]

    def clouds(self) -> np.ndarray:
        """Global cloud indices of the whole epoch in global order (O(clouds): for small stores and tests)."""
        parts = [self.batch(k) for k in range(self.num_batches)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def round_batches(self, readers: int = 1) -> int:
        """Global batches per round: one window of every lane, and at least 16 batches for each of
        ``readers`` (ranks times workers) sharing them."""
        per_lane = max(self._span // self.batch_size, -(-16 * readers // self.lanes))
        per_lane = -(-per_lane // (self._span // self.batch_size)) * (self._span // self.batch_size)
        return self.lanes * per_lane

    def round(self, batch_ids: np.ndarray) -> Round:
        """The clouds of the given global batches (ascending; only the epoch's last may be
        partial), laid out as pieces for reading."""
        batch_ids = _ints(batch_ids)
        per_batch = [self.positions(int(k)) for k in batch_ids]
        flat = np.concatenate(per_batch) if per_batch else _arange(0)
        uniq, order = np.unique(flat, return_inverse=True)
        # One lookup per segment: its positions lie in one window, the segments far apart.
        seg = np.minimum(uniq // self._m, self.lanes) if self._m else np.full(len(uniq), self.lanes)
        ids, block = _arange(len(uniq)), _arange(len(uniq))  # filled below
        # Any grouping gives the same ids; grouping by segment bounds the span each lookup sorts.
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(seg)) + 1, [len(uniq)]])  # pragma: no mutate
        for a, c in zip(bounds[:-1], bounds[1:]):  # pragma: no mutate (as above)
            ids[a:c], block[a:c] = self.ids(uniq[a:c])
        cut = np.flatnonzero((np.diff(block) != 0) | (np.diff(seg) != 0)) + 1
        piece = np.zeros(len(uniq), dtype=np.int64)
        piece[cut] = 1
        piece = np.cumsum(piece)
        # No clouds, no piece (not one empty piece).
        piece_starts = np.concatenate([[0], cut, [len(uniq)]] if len(uniq) else [[0]]).astype(np.int64)
        return Round(ids, piece, piece_starts, order.astype(np.int64), self.batch_size)


def share(num_batches: int, *, rank: int, world_size: int, start: int = 0, worker: int = 0,
          num_workers: int = 1) -> np.ndarray:
    """Global batch indices of one rank and worker, in the order it yields them.

    Args:
        num_batches: batches of the epoch.
        rank, world_size: the rank; it gets global batches ``rank, rank + world_size, ...``.
        start: local batches of the rank already consumed (mid-epoch resume).
        worker, num_workers: the worker process; it gets every ``num_workers``-th local batch
            from ``start + worker`` on, matching the round-robin in which the loader takes them.
    """
    local = _arange(rank, num_batches, world_size)
    return local[start + worker :: num_workers]
