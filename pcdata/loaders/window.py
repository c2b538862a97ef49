"""Reading one worker's batches: pieces decoded into an arena, batches padded out of it.

A worker knows its whole schedule for the epoch (:func:`~pcdata.loaders.order.share`), so it
decodes each piece it needs exactly once, at the first batch that uses it, and frees it after the
last: the live set is the shuffle buffer's window, never the store. Everything per cloud is numpy
index arithmetic over whole batches; the only Python loops run over pieces (tens per batch at most).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
import torch

from .order import EpochPlan

__all__ = ["Arena", "WindowReader", "pad_batch", "flat_batch_positions"]


def flat_batch_positions(plan: EpochPlan, batch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``plan.seq`` of the given batches, concatenated, and the batch bounds."""
    b = plan.batch_size
    starts = batch_ids * b
    sizes = np.clip(len(plan.order) - starts, 0, b)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    idx = np.repeat(starts - bounds[:-1], sizes) + np.arange(bounds[-1], dtype=np.int64)
    return plan.order[idx], bounds


class Arena:
    """Rows of decoded points for the live pieces, with bump allocation and compaction.

    Freed pieces leave holes; when the next piece does not fit, live pieces are moved down
    (and the array doubled if still too small). Each point is copied at most about once more
    than it is decoded, and :meth:`put` reports the moves so the caller can update its index.
    """

    def __init__(self, width: int, capacity: int = 1 << 16, slack: int = 0):
        # ``slack`` rows past the capacity are never written: reading N rows from any start stays
        # inside the array (see :func:`pad_batch`).
        self.slack = slack
        self.rows = np.zeros((max(capacity, 1) + slack, width), dtype=np.float32)
        self.top = 0
        self.live: dict[int, tuple[int, int]] = {}

    def fits(self, width: int, capacity: int, slack: int) -> bool:
        return self.rows.shape[1] == width and self.slack >= slack and len(self.rows) - self.slack >= capacity

    def clear(self) -> None:
        self.top, self.live = 0, {}

    def put(self, piece: int, data: np.ndarray) -> tuple[int, dict[int, int]]:
        """Store ``data`` for ``piece``; returns its first row and ``{piece: shift}`` of moved pieces."""
        moved: dict[int, int] = {}
        need = len(data)
        if self.top + need > len(self.rows) - self.slack:
            moved = self._compact(need)
        lo = self.top
        self.rows[lo : lo + need] = data
        self.top += need
        self.live[piece] = (lo, lo + need)
        return lo, moved

    def free(self, piece: int) -> None:
        lo, hi = self.live.pop(piece)
        if hi == self.top:  # the newest piece: reuse its rows at once
            self.top = max((h for _, h in self.live.values()), default=0)

    def _compact(self, need: int) -> dict[int, int]:
        live = sorted(self.live.items(), key=lambda kv: kv[1][0])
        used = sum(hi - lo for _, (lo, hi) in live)
        target = self.rows
        if used + need > (len(self.rows) - self.slack) // 2:
            # Keep at least half free after compaction, so compactions stay rare.
            target = np.zeros((2 * (used + need) + self.slack, self.rows.shape[1]), dtype=np.float32)
        moved, top = {}, 0
        for piece, (lo, hi) in live:
            if lo != top or target is not self.rows:
                target[top : top + hi - lo] = self.rows[lo:hi]  # moves down: numpy handles the overlap
                moved[piece] = top - lo
            self.live[piece] = (top, top + hi - lo)
            top += hi - lo
        self.rows, self.top = target, top
        return moved


class WindowReader:
    """Yields a worker's batches as (global batch id, positions into ``plan.seq``), with the
    points of every position decoded into :attr:`arena` and located by :attr:`first_row`.

    Args:
        plan: the epoch plan.
        batch_ids: this worker's global batches, in the order it yields them.
        offsets: global offsets of the store ``[num_clouds + 1]``.
        read_points: ``(start, stop) -> float32 [stop - start, F]`` rows of the store's points.
        columns: point feature columns to keep (None: all).
        width: number of columns kept.
        slack: rows kept free past the arena's end (the padded length, for :func:`pad_batch`).
        read_ahead: pieces decoded ahead in a background thread (beyond the one needed next).
        arena: an arena to reuse (from the previous epoch), if it is big enough.
    """

    def __init__(self, plan: EpochPlan, batch_ids: np.ndarray, offsets: np.ndarray,
                 read_points: Callable[[int, int], np.ndarray], columns: np.ndarray | None, width: int,
                 slack: int = 0, read_ahead: int = 2, arena: Arena | None = None):
        self.plan, self.batch_ids, self.offsets = plan, np.asarray(batch_ids, dtype=np.int64), offsets
        self.read_ahead = read_ahead
        self.read_points, self.columns = read_points, columns
        self.first_row = np.zeros(len(plan.seq), dtype=np.int64)
        self.positions, self.bounds = flat_batch_positions(plan, self.batch_ids)
        peak = self._schedule()
        # Twice the peak of live rows: compaction then never needs to grow the arena and moves
        # each row at most about once. An arena from an earlier epoch is reused when big enough:
        # its memory is already mapped (fresh pages cost a fault each on first touch).
        if arena is not None and arena.fits(width, 2 * peak, slack):
            arena.clear()
            self.arena = arena
        else:
            self.arena = Arena(width, capacity=2 * peak, slack=slack)

    def _schedule(self) -> int:
        """Plan loads and frees; returns the peak number of live rows."""
        # First and last batch (in this worker's sequence) that touch each piece.
        t_of = np.repeat(np.arange(len(self.batch_ids)), np.diff(self.bounds))
        pieces = self.plan.piece[self.positions]
        uniq, first = np.unique(pieces, return_index=True)
        _, last_rev = np.unique(pieces[::-1], return_index=True)
        first_t, last_t = t_of[first], t_of[len(pieces) - 1 - last_rev]
        by_first, by_last = np.argsort(first_t, kind="stable"), np.argsort(last_t, kind="stable")
        steps = np.arange(len(self.batch_ids) + 1)
        self._loads = (uniq[by_first], np.searchsorted(first_t[by_first], steps))
        self._frees = (uniq[by_last], np.searchsorted(last_t[by_last], steps))
        plan, off = self.plan, self.offsets
        a, c = plan.piece_starts[uniq], plan.piece_starts[uniq + 1] - 1
        rows = off[plan.seq[c] + 1] - off[plan.seq[a]]  # an upper bound: the block's whole range
        live = np.zeros(len(self.batch_ids) + 1, dtype=np.int64)
        np.add.at(live, first_t, rows)
        np.add.at(live, last_t + 1, -rows)
        return int(np.cumsum(live).max(initial=0))

    def _read(self, piece: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode one piece: its rows and the first row of each of its clouds (runs in a thread)."""
        plan, off = self.plan, self.offsets
        ids = plan.seq[plan.piece_starts[piece] : plan.piece_starts[piece + 1]]  # ascending: one block, store order
        p0, p1 = int(off[ids[0]]), int(off[ids[-1] + 1])
        data = self.read_points(p0, p1)
        counts = off[ids + 1] - off[ids]
        kept = int(counts.sum())
        if kept < 0.9 * (p1 - p0):
            # A split keeps a fraction of the block: store only its clouds' rows.
            first = np.cumsum(counts) - counts
            rows = np.repeat(off[ids] - p0 - first, counts) + np.arange(kept, dtype=np.int64)
            data, local = data[rows], first
        else:
            local = off[ids] - p0
        if self.columns is not None:
            data = data[:, self.columns]
        return data, local

    def _place(self, piece: int, data: np.ndarray, local: np.ndarray) -> None:
        plan = self.plan
        lo, moved = self.arena.put(piece, data)
        self.first_row[plan.piece_starts[piece] : plan.piece_starts[piece + 1]] = lo + local
        for other, shift in moved.items():
            self.first_row[plan.piece_starts[other] : plan.piece_starts[other + 1]] += shift

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        load_ids, load_at = self._loads
        free_ids, free_at = self._frees
        # Decoding (Blosc, in zarr's threads) releases the GIL: read the next pieces in a thread
        # while this one pads batches, so the two overlap on separate cores.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcdata-read")
        pending: dict[int, Future] = {}
        ahead = 0
        try:
            for t, k in enumerate(self.batch_ids):
                # Everything this batch needs, plus up to read_ahead pieces of the next ones.
                while ahead < len(load_ids) and (ahead < load_at[t + 1] or len(pending) <= self.read_ahead):
                    pending[int(load_ids[ahead])] = pool.submit(self._read, int(load_ids[ahead]))
                    ahead += 1
                for piece in load_ids[load_at[t] : load_at[t + 1]]:
                    self._place(int(piece), *pending.pop(int(piece)).result())
                yield int(k), self.positions[self.bounds[t] : self.bounds[t + 1]]
                for piece in free_ids[free_at[t] : free_at[t + 1]]:
                    self.arena.free(int(piece))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def pad_batch(rows: np.ndarray, first_row: np.ndarray, counts: np.ndarray, pad: int | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clouds as zero-padded ``[B, N, F]`` float32 points and a ``[B, N]`` bool mask.

    Each cloud is copied as one block of N rows, the way a padded in-memory tensor is indexed,
    and the values past its end are then zeroed: a copy per cloud, not per point.

    Args:
        rows: ``[R, F]`` float32 C-contiguous rows holding every cloud's points contiguously, with
            at least N rows after every cloud's start (the arena and the cache keep that slack).
        first_row: first row of each cloud, ``[B]``.
        counts: points of each cloud, ``[B]``.
        pad: N; None pads to the longest cloud. Longer clouds keep their first N points.

    Returns:
        Tensors in torch's 64-byte aligned memory, which JAX's DLPack import takes without a copy.
    """
    b, width = len(first_row), rows.shape[1]
    n = int(counts.max(initial=0)) if pad is None else int(pad)
    kept = np.minimum(counts, n)
    mask = torch.empty((b, n), dtype=torch.bool)
    np.copyto(mask.numpy(), _steps(n, True)[n - kept])
    points = torch.empty((b, n, width), dtype=torch.float32)
    if b == 0 or n == 0 or width == 0:
        return points, mask
    if int(first_row.max()) + n > len(rows) or not rows.flags.c_contiguous:
        raise ValueError(f"pad_batch needs {n} rows after every cloud's start in C-contiguous rows")
    windows = np.lib.stride_tricks.as_strided(rows, shape=(len(rows) - n + 1, n, width),
                                              strides=(rows.strides[0], rows.strides[0], rows.strides[1]),
                                              writeable=False)
    # numpy's gather runs on this thread alone: torch.index_select spreads over the intra-op
    # threads, which spin and stall when the cores are busy (the read-ahead thread, the model,
    # other processes). The gathered blocks are then copied into torch's aligned buffer.
    out = points.numpy()
    out[...] = windows[first_row]
    # copyto rather than a multiply by the mask: rows past a cloud may hold anything, NaN included.
    np.copyto(out.reshape(b, n * width), 0.0, where=_steps(n * width, False)[(n - kept) * width])
    return points, mask


def _steps(n: int, first: bool) -> np.ndarray:
    """Rows of ``n`` booleans: row ``s`` is ``first`` for its first ``n - s`` entries, then not.

    Windows over ``[first] * n + [not first] * n``: indexing ``n - k`` gives a row with ``k``
    leading ``first`` values, so masks of many lengths are built by one gather, with no compare.
    """
    template = np.full(2 * n, not first, dtype=bool)
    template[:n] = first
    return np.lib.stride_tricks.as_strided(template, shape=(n + 1, n), strides=(1, 1), writeable=False)
