"""Reading one worker's batches: pieces decoded into a ring by a background thread, batches padded out of it.

A worker knows its schedule a round at a time (:meth:`~pcdata.loaders.order.EpochPlan.round`):
which batch first and last needs each piece. :func:`plan_ring` places every piece in a ring of
rows before the round starts, so that a piece only overwrites pieces whose last batch comes before its
first one. A reader thread then decodes pieces straight into their place, in load order, running
ahead as far as the ring allows, while this thread pads batches out of the ring; when this thread
would wait for a piece it decodes the next one itself. Decoding (Blosc, which releases the GIL)
and padding (a compiled loop, which releases it too) thus keep two cores busy, and no row is
copied twice, moved, or written to freshly allocated memory (first touches of new pages cost
more than the decode on a VM).

Per cloud everything is whole-array arithmetic; the only Python loops run over pieces (tens per
batch at most).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .order import Round

__all__ = ["RingPlan", "plan_ring", "RingReader", "pad_batch", "flat_batch_positions"]


def flat_batch_positions(plan: Round, batch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``plan.seq`` of the given batches of a round, concatenated, and the batch bounds."""
    b = plan.batch_size
    starts = batch_ids * b
    sizes = np.clip(len(plan.order) - starts, 0, b)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    idx = np.repeat(starts - bounds[:-1], sizes) + np.arange(bounds[-1], dtype=np.int64)
    return plan.order[idx], bounds


@dataclass(frozen=True)
class RingPlan:
    """Where each piece of one worker's round lives in the ring, and when it may be written.

    Attributes:
        loads: pieces in the order the reader decodes them (by the first batch that needs them).
        load_at: ``loads[load_at[t]:load_at[t + 1]]`` are first needed by step ``t``.
        lo: first ring row of each load.
        ready: a load may be written once steps ``0..ready`` are done (-1: at once): the last
            step that reads a piece it overwrites.
        src: ``(p0, p1)`` store rows of each load's block.
        gather: per load, rows of the block to keep (None: the whole block).
        first_row: ring row of each position of ``plan.seq`` (of this worker's pieces).
        capacity: rows the ring needs.
    """

    loads: np.ndarray
    load_at: np.ndarray
    lo: np.ndarray
    ready: np.ndarray
    src: np.ndarray
    gather: list[np.ndarray | None]
    first_row: np.ndarray
    capacity: int


def plan_ring(plan: Round, batch_ids: np.ndarray, positions: np.ndarray, bounds: np.ndarray,
              starts: np.ndarray, counts: np.ndarray, capacity: int = 0) -> RingPlan:
    """Place the pieces of a worker's batches in a ring of at least ``capacity`` rows.

    Args:
        plan: the round.
        batch_ids: the round's batches in the order the worker yields them.
        positions, bounds: :func:`flat_batch_positions` of those batches.
        starts, counts: global first point row and points of each cloud of ``plan.seq``.
        capacity: the ring's current size (a larger one is planned when needed).
    """
    steps = len(batch_ids)
    t_of = np.repeat(np.arange(steps), np.diff(bounds))
    pieces = plan.piece[positions]
    uniq, first = np.unique(pieces, return_index=True)
    _, last_rev = np.unique(pieces[::-1], return_index=True)
    first_t, last_t = t_of[first], t_of[len(pieces) - 1 - last_rev]
    by_first = np.argsort(first_t, kind="stable")
    loads, first_t, last_t = uniq[by_first], first_t[by_first], last_t[by_first]
    load_at = np.searchsorted(first_t, np.arange(steps + 1))

    # Each piece is a run of ascending store clouds: one block read [p0, p1). A split that keeps a
    # small part of the block stores only its clouds' rows.
    ps, seq = plan.piece_starts, plan.seq
    a, c = ps[loads], ps[loads + 1]
    p0, p1 = starts[a], starts[c - 1] + counts[c - 1]
    seq_counts = counts
    csum = np.concatenate([[0], np.cumsum(seq_counts)])
    kept = csum[c] - csum[a]
    filtered = kept < 0.9 * (p1 - p0)
    size = np.where(filtered, kept, p1 - p0)

    # Twice the peak of live rows leaves the reader room to run ahead of the batches.
    live = np.zeros(steps + 1, dtype=np.int64)
    np.add.at(live, first_t, size)
    np.add.at(live, last_t + 1, -size)
    peak = int(np.cumsum(live).max(initial=0))
    lo, ready, capacity = _place(size, first_t, last_t, max(int(capacity), 2 * peak, 1))

    # Ring row of every position of these pieces: the piece's place plus the cloud's row in it.
    first_row = np.zeros(len(seq), dtype=np.int64)
    gather: list[np.ndarray | None] = []
    for j in range(len(loads)):
        span = slice(int(a[j]), int(c[j]))
        if filtered[j]:
            local = csum[span] - csum[a[j]]
            gather.append(np.repeat(starts[span] - p0[j] - local, seq_counts[span]) + np.arange(int(kept[j]), dtype=np.int64))
        else:
            local = starts[span] - p0[j]
            gather.append(None)
        first_row[span] = lo[j] + local
    return RingPlan(loads, load_at, lo, ready, np.stack([p0, p1], axis=1), gather, first_row, capacity)


def _place(size: np.ndarray, first_t: np.ndarray, last_t: np.ndarray, capacity: int
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Ring rows and ready steps of each load; doubles the capacity until every load fits.

    A load goes at the ring's head (wrapping to 0 when it would pass the end) and must only
    overwrite pieces whose last step comes before its own first step: otherwise the reader would
    wait for a step that waits for it.
    """
    capacity = max(capacity, 2 * int(size.max(initial=1)))
    while True:
        lo = np.zeros(len(size), dtype=np.int64)
        ready = np.full(len(size), -1, dtype=np.int64)
        regions: list[list[int]] = []  # [lo, hi, last step] of the newest occupant of each ring range
        head, ok = 0, True
        for j in range(len(size)):
            r = int(size[j])
            if head + r > capacity:
                head = 0
            a, b = head, head + r
            keep, worst = [], -1
            for reg in regions:
                if reg[1] <= a or reg[0] >= b:
                    keep.append(reg)
                    continue
                worst = max(worst, reg[2])
                if reg[0] < a:
                    keep.append([reg[0], a, reg[2]])
                if reg[1] > b:
                    keep.append([b, reg[1], reg[2]])
            if worst >= first_t[j]:
                ok = False
                break
            if r:
                keep.append([a, b, int(last_t[j])])
            regions, lo[j], ready[j], head = keep, a, worst, b
        if ok:
            return lo, ready, capacity
        capacity *= 2


class RingReader:
    """Yields a worker's batches of a round as (batch id in the round, positions into
    ``plan.seq``), with the points of every position decoded into :attr:`rows` at :attr:`first_row`.

    Args:
        plan: the round.
        batch_ids: this worker's batches of the round, in the order it yields them.
        starts, counts: global first point row and points of each cloud of ``plan.seq``.
        read_points: ``(start, stop, out) -> out``: store rows decoded into ``out``.
        store_width: point features of the store.
        columns: point feature columns to keep (None: all).
        rows: the ring of the previous round, reused when big enough (its pages are mapped).
    """

    def __init__(self, plan: Round, batch_ids: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                 read_points: Callable[[int, int, np.ndarray], np.ndarray], store_width: int,
                 columns: np.ndarray | None, rows: np.ndarray | None = None):
        self.plan, self.batch_ids = plan, np.asarray(batch_ids, dtype=np.int64)
        self.read_points, self.store_width, self.columns = read_points, store_width, columns
        width = store_width if columns is None else len(columns)
        self.positions, self.bounds = flat_batch_positions(plan, self.batch_ids)
        reuse = rows is not None and rows.shape[1] == width
        self.ring = plan_ring(plan, self.batch_ids, self.positions, self.bounds, starts, counts,
                              capacity=len(rows) if reuse else 0)
        if reuse and len(rows) >= self.ring.capacity:
            self.rows = rows
        else:  # a quarter more than needed: the next rounds' plans fit (new pages are slow to touch)
            self.rows = np.zeros((self.ring.capacity * 5 // 4, width), np.float32)
        self.first_row = self.ring.first_row
        self._cond = threading.Condition()
        self._claimed = 0  # loads taken by a thread to decode, in order
        self._finished = np.zeros(len(self.ring.loads) + 1, dtype=bool)
        self._produced = 0  # loads written, all of them before this one
        self._done = 0  # steps whose batch was taken
        self._error: BaseException | None = None
        self._stop = False

    def _decode(self, j: int, scratch: list[np.ndarray]) -> None:
        """Load ``j`` into its ring rows."""
        r = self.ring
        p0, p1 = (int(v) for v in r.src[j])
        gather, cols = r.gather[j], self.columns
        dest = self.rows[r.lo[j] : r.lo[j] + (p1 - p0 if gather is None else len(gather))]
        if gather is None and cols is None:
            self.read_points(p0, p1, dest)  # whole chunks decode straight into the ring
            return
        # A part of the block, or some of its columns: decode into a reused buffer, then pick.
        block = self.read_points(p0, p1, _buffer(scratch, 0, (p1 - p0, self.store_width)))
        if gather is not None:
            block = np.take(block, gather, axis=0, mode="clip",
                            out=dest if cols is None else _buffer(scratch, 1, (len(gather), self.store_width)))
        if cols is not None:
            np.take(block, cols, axis=1, out=dest, mode="clip")

    def _claimable(self) -> bool:
        """The next load may be written now (call holding the lock)."""
        return self._claimed < len(self.ring.loads) and self._done > self.ring.ready[self._claimed]

    def _finish(self, j: int) -> None:
        """Load ``j`` is written (call holding the lock)."""
        self._finished[j] = True
        while self._finished[self._produced]:
            self._produced += 1
        self._cond.notify_all()

    def _run(self) -> None:
        scratch: list[np.ndarray] = []
        try:
            while True:
                with self._cond:
                    while not self._claimable() and not self._stop and self._claimed < len(self.ring.loads):
                        self._cond.wait()
                    if self._stop or self._claimed == len(self.ring.loads):
                        return
                    j, self._claimed = self._claimed, self._claimed + 1
                self._decode(j, scratch)
                with self._cond:
                    self._finish(j)
        except BaseException as err:  # handed to the consuming thread, which raises it
            with self._cond:
                self._error = err
                self._cond.notify_all()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        load_at = self.ring.load_at
        scratch: list[np.ndarray] = []
        thread = threading.Thread(target=self._run, name="pcdata-read", daemon=True)
        thread.start()
        try:
            for t, k in enumerate(self.batch_ids):
                with self._cond:
                    while self._produced < load_at[t + 1] and self._error is None:
                        if self._claimable():
                            # Rather than wait, decode the next load here (one this batch needs or
                            # a later one): decoding then runs on both cores when it is the slower half.
                            j, self._claimed = self._claimed, self._claimed + 1
                            self._cond.release()
                            try:
                                self._decode(j, scratch)
                            finally:
                                self._cond.acquire()
                            self._finish(j)
                        else:
                            self._cond.wait()
                    if self._error is not None:
                        raise self._error
                yield int(k), self.positions[self.bounds[t] : self.bounds[t + 1]]
                with self._cond:  # the caller has taken batch t: its rows may be overwritten
                    self._done = t + 1
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            thread.join()


def _buffer(scratch: list[np.ndarray], k: int, shape: tuple[int, int]) -> np.ndarray:
    """A reused scratch array of at least ``shape`` (grown, never shrunk), as a view of that shape."""
    while len(scratch) <= k:
        scratch.append(np.zeros((0, 0), np.float32))
    have = scratch[k]
    if have.shape[1] != shape[1] or len(have) < shape[0]:
        scratch[k] = have = np.zeros((max(shape[0], 2 * len(have)), shape[1]), np.float32)
    return have[: shape[0]]


def pad_batch(rows: np.ndarray, first_row: np.ndarray, counts: np.ndarray, pad: int | None,
              cloud: np.ndarray | None = None, ids: np.ndarray | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Clouds as zero-padded ``[B, N, F]`` float32 points, a ``[B, N]`` bool mask and their fields.

    Args:
        rows: ``[R, F]`` float32 rows holding every cloud's points contiguously.
        first_row: first row of each cloud, ``[B]``.
        counts: points of each cloud, ``[B]``.
        pad: N; None pads to the longest cloud. Longer clouds keep their first N points.
        cloud, ids: a ``[num_clouds, C]`` float32 table of cloud fields and the batch's rows of it
            (default: no fields).

    Returns:
        ``(points, mask, fields [B, C], points cut by the padding)``, tensors in torch's 64-byte
        aligned memory, which JAX's DLPack import takes without a copy.

    Raises:
        ValueError: a cloud reaches outside ``rows``, or an id outside ``cloud``.
    """
    b, width = len(first_row), rows.shape[1]
    n = int(counts.max(initial=0)) if pad is None else int(pad)
    if cloud is None:
        cloud, ids = _NO_FIELDS, np.zeros(b, dtype=np.int64)
    points = torch.empty((b, n, width), dtype=torch.float32)
    mask = torch.empty((b, n), dtype=torch.bool)
    fields = torch.empty((b, cloud.shape[1]), dtype=torch.float32)
    kernel = _ASSEMBLE or _warm_kernel()
    cut = kernel(np.ascontiguousarray(rows, dtype=np.float32), first_row, counts, cloud, ids,
                 points.numpy(), mask.numpy(), fields.numpy(), _SINK)
    if cut < 0:
        raise ValueError(f"pad_batch: a cloud reaches past the {len(rows)} rows given, or a field row past {len(cloud)}")
    return points, mask, fields, int(cut)


_NO_FIELDS = np.zeros((1, 0), dtype=np.float32)
_GROUP, _TOUCH = 16384, 1024  # floats: clouds touched ahead per group, and of each cloud
_SINK = np.zeros(1, np.float32)  # where the kernel stores what it touched (any thread; never read)
_ASSEMBLE = None
_WARMING: threading.Thread | None = None
_WARM_LOCK = threading.Lock()


def _warm_kernel():
    """The numpy assembly for now, while the compiled kernel loads in a thread.

    Loading numba and its cached machine code takes about a second in a fresh process; the first
    batches need not wait for it (the numpy path gives the same bytes, only slower)."""
    global _WARMING
    with _WARM_LOCK:
        if _WARMING is None:
            _WARMING = threading.Thread(target=_kernel, name="pcdata-kernel", daemon=True)
            _WARMING.start()
    return _ASSEMBLE or _assemble_numpy


def _assemble_numpy(rows, first_row, counts, cloud, ids, points, mask, fields, sink) -> int:
    """What the compiled kernel does, in numpy (several passes and temporaries)."""
    b, n, w = points.shape
    keep = np.minimum(counts, n)
    if b and (first_row.min() < 0 or (first_row + keep).max() > rows.shape[0] or ids.min() < 0
              or ids.max() >= cloud.shape[0]):
        return -1
    position = np.arange(n)
    mask[...] = position[None, :] < keep[:, None]
    points[...] = 0.0
    points[mask] = rows[(first_row[:, None] + position[None, :])[mask]]
    fields[...] = cloud[ids]
    return int((counts - keep).sum())


def _kernel():
    """The batch assembly loop, compiled by numba on first use (and cached on disk).

    One pass per cloud with no temporary: its rows copied, the rest zeroed, its mask and fields
    set. numpy needs several passes and temporaries for the same (a gather of overlapping windows,
    a copy, a masked zeroing), and per call overheads that add up at thousands of batches a
    second; the compiled loop also releases the GIL, so the reader thread decodes beside it.
    """
    global _ASSEMBLE
    if _ASSEMBLE is None:
        import numba

        @numba.njit(nogil=True, cache=True, boundscheck=False)
        def assemble(rows, first_row, counts, cloud, ids, points, mask, fields, sink):  # pragma: no cover - compiled
            b, n, w = points.shape
            flat = rows.reshape(-1)
            dense = points.reshape(b, n * w)
            for i in range(b):
                f, k, c = first_row[i], min(counts[i], n), ids[i]
                if f < 0 or f + k > rows.shape[0] or c < 0 or c >= cloud.shape[0]:
                    return -1
            cut, touched, g0 = 0, 0.0, 0
            while g0 < b:
                # Touch the first lines of a group of clouds (about 64 kB) before copying them:
                # independent loads, so their cache misses overlap instead of one per cloud
                # (measured 1.5x on jets; long showers stream on the hardware prefetcher anyway).
                g1, size = g0, 0
                while g1 < b and size < _GROUP:
                    f, k = first_row[g1] * w, min(counts[g1], n) * w
                    for j in range(0, min(k, _TOUCH), 16):
                        touched += flat[f + j]
                    size += k
                    g1 += 1
                for i in range(g0, g1):
                    f, k, c = first_row[i], min(counts[i], n), ids[i]
                    cut += counts[i] - k
                    dense[i, : k * w] = flat[f * w : (f + k) * w]
                    dense[i, k * w :] = 0.0
                    mask[i, :k] = True
                    mask[i, k:] = False
                    fields[i, :] = cloud[c, :]
                g0 = g1
            sink[0] = touched  # stored, so that the compiler keeps the loads
            return cut

        _ASSEMBLE = assemble
    return _ASSEMBLE
