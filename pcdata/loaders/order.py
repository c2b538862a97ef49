"""The global order of an epoch, and each rank's and worker's share of it.

Method ``blocks-lanes-window-v1``. Every rank and worker computes the same :class:`EpochPlan`
from (selection, store layout, seed, epoch, batch size, options) alone, with hash arithmetic
(splitmix64) rather than a stateful generator, so the plan is the same on every machine and
numpy version, whatever the number of ranks and workers:

1. **Blocks.** Selected clouds are grouped into runs of consecutive store clouds that start at
   points-chunk boundaries (:meth:`Store.chunk_starts`), merged to about ``block_clouds`` clouds,
   so a block is one contiguous read.
2. **Block shuffle.** Blocks are ordered by a hash of (seed, epoch, block): the sequence ``S``.
3. **Lanes.** ``S`` is cut into ``lanes`` contiguous segments of equal length, a whole number of
   batches each; the rest (fewer than ``lanes * batch_size`` clouds) is the *tail* segment.
4. **Buffer shuffle.** In each segment the cloud at position ``p`` gets the key
   ``p + u * buffer_size`` with ``u`` uniform in [0, 1) from the hash, and the segment is sorted by
   key: no cloud moves more than ``buffer_size`` places, the reach of a shuffle buffer of that
   size, but computed for the whole epoch in one sort instead of a loop over clouds.
5. **Bucketing** (optional). Windows of ``bucket`` batches of a segment are sorted by
   multiplicity and cut into batches; the full batches of a window are then put in hash order.
6. **Interleave.** Global batch ``k`` is batch ``k // lanes`` of lane ``k % lanes``; the tail's
   batches come last (its partial batch, if any, last of all).

Shares: global batch ``k`` belongs to rank ``k % world_size``; the rank's local batch ``j`` (from
``start``, the batches already consumed) goes to worker ``(j - start) % num_workers``.
The loader takes its workers' batches round-robin, so each rank sees its batches in global
order, and interleaving the ranks' streams batch by batch gives the global order back. A worker
touches only the lanes of its batches: when ``world_size * num_workers`` divides ``lanes`` it
reads ``1 / (world_size * num_workers)`` of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.splits import splitmix64

__all__ = ["METHOD", "ShuffleOptions", "EpochPlan", "plan_epoch", "block_starts", "share", "hash_seed"]

METHOD = "blocks-lanes-window-v1"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class ShuffleOptions:
    """How the shuffle trades randomness for contiguous reads and memory.

    Attributes:
        buffer_size: reach of the buffer shuffle in clouds; default ``max(2 * batch_size,
            2 * block)`` where ``block`` is the mean block length, so that a batch draws from about
            five blocks. Memory per lane read is about ``2 * buffer_size + batch_size + block``
            decoded clouds; a larger buffer mixes more blocks into each batch.
        block_clouds: merge chunk-aligned runs to about this many clouds per block; default
            ``None``: four points chunks per block (a block read then decodes its boundary chunk
            once more, so longer blocks waste less).
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


def hash_seed(*words: int) -> int:
    """A 64-bit value mixed from integers (seed, epoch, stream...) with splitmix64."""
    state = np.uint64(0)
    with np.errstate(over="ignore"):
        for w in words:
            state = splitmix64(np.array([state + _GOLDEN + np.uint64(int(w) & _MASK64)], dtype=np.uint64))[0]
    return int(state)


def _uniform(n: int, *words: int) -> np.ndarray:
    """``n`` floats in [0, 1) from the splitmix64 stream named by ``words`` (53-bit mantissa)."""
    base = np.uint64(hash_seed(*words))
    with np.errstate(over="ignore"):
        keys = splitmix64(base + (np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN))
    return (keys >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def block_starts(chunk_starts: np.ndarray, fragment_starts: np.ndarray, block_clouds: int | None,
                 counts: np.ndarray, chunks_per_block: int = 4) -> np.ndarray:
    """Global indices of the clouds that open a block.

    Chunk boundaries are thinned to about ``block_clouds`` clouds per block (default: the mean
    number of clouds in ``chunks_per_block`` chunks); fragment starts are always kept, so a block
    never spans two fragments.
    """
    if len(chunk_starts) == 0:
        return np.zeros(0, dtype=np.int64)
    if block_clouds is None:
        n = len(counts)
        block_clouds = max(1, int(round(chunks_per_block * n / max(1, len(chunk_starts)))))
    # Keep the first boundary in each bin of block_clouds cloud indices: vectorised, blocks of
    # roughly block_clouds (between one chunk and about twice the target).
    _, first = np.unique(chunk_starts // block_clouds, return_index=True)
    return np.union1d(chunk_starts[first], fragment_starts).astype(np.int64)


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's global order.

    Attributes:
        seq: global cloud indices in block-shuffled order (``S``), ``[n]``.
        piece: for each position of ``seq``, its piece: a run of one block inside one segment
            (the unit a worker reads), ``[n]``.
        piece_starts: first position of each piece in ``seq``, then ``n``.
        order: positions into ``seq`` in global order, ``[num_used]``; batch ``k`` is
            ``order[k * batch_size:(k + 1) * batch_size]``.
        batch_size: clouds per batch (the last batch may be shorter unless ``drop_last``).
        num_batches: batches in the epoch.
    """

    seq: np.ndarray
    piece: np.ndarray
    piece_starts: np.ndarray
    order: np.ndarray
    batch_size: int
    num_batches: int

    def clouds(self) -> np.ndarray:
        """Global cloud indices in the epoch's global order."""
        return self.seq[self.order]

    def batch(self, k: int) -> np.ndarray:
        """Positions into ``seq`` of global batch ``k``."""
        return self.order[k * self.batch_size : (k + 1) * self.batch_size]


def plan_epoch(
    selection: np.ndarray,
    blocks: np.ndarray,
    counts: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    options: ShuffleOptions = ShuffleOptions(),
    drop_last: bool = False,
    world_size: int = 1,
) -> EpochPlan:
    """The global order of epoch ``epoch`` (see the module docstring for the method).

    Args:
        selection: sorted global indices of the clouds to stream (a split, or all).
        blocks: sorted global indices opening each block (:func:`block_starts`).
        counts: multiplicity of every cloud of the store (for bucketing).
        batch_size: clouds per batch.
        shuffle: False: the selection in store order, one lane, no bucketing.
        seed, epoch: name the permutation.
        options: buffer, blocks, lanes, bucketing.
        drop_last: drop the last partial batch, and as many full batches as needed for every
            rank to get the same number (what DistributedDataParallel needs).
        world_size: number of ranks (used only by ``drop_last``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sel = np.asarray(selection, dtype=np.int64)
    n, b = len(sel), int(batch_size)
    block_of = np.searchsorted(blocks, sel, side="right") - 1
    if shuffle and n:
        # Hash keys of the store's block ids (not of their rank in the selection): a block's place
        # does not depend on which other blocks the split selected.
        uniq, inverse = np.unique(block_of, return_inverse=True)
        keys = _uniform(int(blocks.size), seed, epoch, 1)[uniq]
        block_rank = np.empty(len(uniq), dtype=np.int64)
        block_rank[np.argsort(keys, kind="stable")] = np.arange(len(uniq))
        s_order = np.argsort(block_rank[inverse], kind="stable")
        seq, seq_block = sel[s_order], block_of[s_order]
    else:
        seq, seq_block = sel, block_of
    lanes = options.lanes if shuffle else 1
    m = (n // (lanes * b)) * b
    pos = np.arange(n, dtype=np.int64)
    seg = np.minimum(pos // m, lanes) if m else np.full(n, lanes, dtype=np.int64)
    seg_start = np.where(seg < lanes, seg * m, lanes * m)
    if shuffle and n:
        mean_block = n / max(1, len(np.unique(seq_block)))
        buffer = options.buffer_size or max(2 * b, int(2 * mean_block))
        key = (pos - seg_start) + _uniform(n, seed, epoch, 2) * buffer
        order = np.lexsort((key, seg))
        if options.bucket:
            order = _bucket(order, seg[order], seg_start[order], counts[seq[order]], b, options.bucket, seed, epoch)
    else:
        order = pos
    lane_part = order[: lanes * m].reshape(lanes, m // b if m else 0, b).transpose(1, 0, 2).reshape(-1)
    order = np.concatenate([lane_part, order[lanes * m :]])
    if drop_last:
        full = (n // b // world_size) * world_size
        order, num_batches = order[: full * b], full
    else:
        num_batches = -(-n // b)
    cut = np.flatnonzero((np.diff(seq_block) != 0) | (np.diff(seg) != 0)) + 1 if n else np.zeros(0, np.int64)
    piece = np.zeros(n, dtype=np.int64)
    piece[cut] = 1
    piece = np.cumsum(piece)
    piece_starts = np.concatenate([[0], cut, [n]]).astype(np.int64)
    return EpochPlan(seq, piece, piece_starts, order, b, int(num_batches))


def _bucket(order, seg, seg_start, counts, b, bucket, seed, epoch) -> np.ndarray:
    """Sort windows of ``bucket`` batches by multiplicity, then put each window's batches in hash order.

    ``order`` is grouped by segment and every segment but the tail holds whole batches, so
    ``place // b`` numbers the batches of all segments at once.
    """
    n = len(order)
    place = np.arange(n, dtype=np.int64)
    rank = place - seg_start  # place inside the segment
    window = seg * (n + 1) + rank // (bucket * b)
    order = order[np.lexsort((counts, window))]
    batch = place // b
    # The last batch of the tail may be partial: it keeps its place at the very end.
    key = np.where(batch < n // b, _uniform(-(-n // b), seed, epoch, 3)[batch], 2.0)
    return order[np.lexsort((place, key, window))]


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
    local = np.arange(rank, num_batches, world_size, dtype=np.int64)
    return local[start + worker :: num_workers]
