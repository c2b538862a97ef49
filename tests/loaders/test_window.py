"""The ring of decoded pieces and the batch assembly, below the loader."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pcdata.loaders.order import EpochPlan, Layout, ShuffleOptions, fragment_blocks, share
from pcdata.loaders.window import RingReader, flat_batch_positions, pad_batch, plan_ring


def _round(store, *, batch_size=64, lanes=4, split=None, epoch=0, rank=0, world_size=1):
    """One round holding all of a rank's batches: (round, its batch ids, point starts, counts)."""
    member = None if split is None else (lambda ids: store.in_split(ids, split))
    layout = Layout.build(fragment_blocks(store.fragment_starts, 200), member)
    plan = EpochPlan(layout, batch_size=batch_size, shuffle=True, seed=3, epoch=epoch,
                     options=ShuffleOptions(lanes=lanes))
    rd = plan.round(share(plan.num_batches, rank=rank, world_size=world_size))
    starts, counts = store.point_ranges(rd.seq)
    return rd, np.arange(len(rd.order) // batch_size + bool(len(rd.order) % batch_size)), starts, counts


@pytest.mark.parametrize("capacity", [0, 1, 10**7])
@pytest.mark.parametrize("split", [None, "val"])
def test_ring_never_overwrites_a_piece_a_later_batch_still_reads(jet_store, capacity, split):
    """Replays the plan as the threads would run it, the reader as far ahead as allowed, with
    each piece's id written into its rows: every batch must find its own pieces intact."""
    plan, batch_ids, starts, counts = _round(jet_store, split=split)
    positions, bounds = flat_batch_positions(plan, batch_ids)
    ring = plan_ring(plan, batch_ids, positions, bounds, starts, counts, capacity=capacity)
    owner = np.full(ring.capacity, -1, dtype=np.int64)
    sizes = [int(p1 - p0) if g is None else len(g) for (p0, p1), g in zip(ring.src, ring.gather)]
    assert all(ring.lo[j] + sizes[j] <= ring.capacity for j in range(len(sizes)))
    produced = 0
    for t in range(len(batch_ids)):
        # The reader writes every load whose overwritten pieces were last read before step t.
        while produced < len(ring.loads) and ring.ready[produced] < t:
            owner[ring.lo[produced] : ring.lo[produced] + sizes[produced]] = ring.loads[produced]
            produced += 1
        assert produced >= ring.load_at[t + 1]  # everything batch t needs is written
        pos = positions[bounds[t] : bounds[t + 1]]
        c = counts[pos]
        rows = np.repeat(ring.first_row[pos], c) + np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        np.testing.assert_array_equal(owner[rows], np.repeat(plan.piece[pos], c))


def test_reader_decodes_the_store_rows_of_every_cloud(jet_store, jets):
    plan, batch_ids, starts, counts = _round(jet_store, split="train", rank=1, world_size=2)
    reader = RingReader(plan, batch_ids, starts, counts, jet_store.read_points, 3, np.array([2, 0]))
    seen = 0
    for k, pos in reader:
        ids = plan.seq[pos]
        for i, f in zip(ids, reader.first_row[pos]):
            want = jets.points[jets.offsets[i] : jets.offsets[i + 1]][:, [2, 0]]
            np.testing.assert_array_equal(reader.rows[f : f + len(want)], want)
        seen += len(ids)
    assert seen == len(plan.order) > 0


@pytest.mark.parametrize("slow", ["pcdata-read", "MainThread"])
def test_both_threads_decode_when_one_is_slow_and_rows_stay_right(jet_store, jets, slow):
    """The consumer decodes the next loads itself rather than wait; whichever thread is slow,
    every batch finds its clouds' rows."""
    import time

    plan, batch_ids, starts, counts = _round(jet_store, batch_size=32)
    by_thread: dict[str, int] = {}

    def read_points(a, b, out):
        name = threading.current_thread().name
        by_thread[name] = by_thread.get(name, 0) + 1
        if name == slow:
            time.sleep(0.002)
        return jet_store.read_points(a, b, out)

    reader = RingReader(plan, batch_ids, starts, counts, read_points, 3, None)
    for k, pos in reader:
        for i, f in zip(plan.seq[pos], reader.first_row[pos]):
            want = jets.points[jets.offsets[i] : jets.offsets[i + 1]]
            np.testing.assert_array_equal(reader.rows[f : f + len(want)], want)
    if slow == "pcdata-read":  # the consumer, kept waiting, took loads of its own
        assert by_thread.get("MainThread", 0) > 0 and by_thread.get("pcdata-read", 0) > 0
    assert sum(by_thread.values()) == len(reader.ring.loads)  # each load decoded once


def test_a_read_error_reaches_the_consumer_and_stops_the_thread(jet_store):
    plan, batch_ids, starts, counts = _round(jet_store)
    calls = []

    def failing(start, stop, out):
        calls.append(start)
        if len(calls) == 3:
            raise OSError("disk gone")
        return jet_store.read_points(start, stop, out)

    before = threading.active_count()
    reader = RingReader(plan, batch_ids, starts, counts, failing, 3, None)
    with pytest.raises(OSError, match="disk gone"):
        for _ in reader:
            pass
    assert threading.active_count() == before


def test_stopping_early_stops_the_reader_thread(jet_store):
    plan, batch_ids, starts, counts = _round(jet_store)
    before = threading.active_count()
    it = iter(RingReader(plan, batch_ids, starts, counts, jet_store.read_points, 3, None))
    next(it)
    it.close()
    assert threading.active_count() == before


def test_pad_batch_pads_truncates_and_gathers_fields():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(100, 2)).astype(np.float32)
    first = np.array([10, 0, 95, 40], dtype=np.int64)
    counts = np.array([7, 0, 5, 30], dtype=np.int64)
    table = rng.normal(size=(9, 3)).astype(np.float32)
    ids = np.array([8, 0, 3, 3], dtype=np.int64)
    points, mask, fields, cut = pad_batch(rows, first, counts, 12, table, ids)
    assert points.shape == (4, 12, 2) and mask.shape == (4, 12) and cut == 30 - 12
    for i in range(4):
        k = min(counts[i], 12)
        np.testing.assert_array_equal(points[i, :k].numpy(), rows[first[i] : first[i] + k])
        assert not points[i, k:].any() and mask[i].sum() == k and mask[i, :k].all()
    np.testing.assert_array_equal(fields.numpy(), table[ids])
    points, mask, fields, cut = pad_batch(rows, first, counts, None)
    assert points.shape == (4, 30, 2) and fields.shape == (4, 0) and cut == 0


def test_pad_batch_refuses_clouds_outside_the_rows():
    rows = np.zeros((20, 3), np.float32)
    with pytest.raises(ValueError, match="20 rows"):
        pad_batch(rows, np.array([15], np.int64), np.array([6], np.int64), None)
    with pytest.raises(ValueError, match="20 rows"):
        pad_batch(rows, np.array([0], np.int64), np.array([1], np.int64), None, np.zeros((2, 1), np.float32),
                  np.array([2], np.int64))
    points, mask, _, _ = pad_batch(rows, np.zeros(0, np.int64), np.zeros(0, np.int64), None)
    assert points.shape == (0, 0, 3) and mask.shape == (0, 0)


@pytest.mark.parametrize("pad", [None, 12])
def test_the_numpy_assembly_used_while_the_kernel_loads_gives_the_same_bytes(pad):
    from pcdata.loaders.window import _assemble_numpy, _kernel

    rng = np.random.default_rng(4)
    rows = rng.normal(size=(500, 3)).astype(np.float32)
    counts = rng.integers(0, 25, size=40)
    first = rng.integers(0, 500 - 25, size=40)
    table = rng.normal(size=(60, 2)).astype(np.float32)
    ids = rng.integers(0, 60, size=40)
    n = int(counts.max()) if pad is None else pad
    outs = []
    for kernel in (_kernel(), _assemble_numpy):
        # Garbage in the outputs first: every element must be written by the assembly.
        out = (np.full((40, n, 3), np.nan, np.float32), np.ones((40, n), bool), np.full((40, 2), np.nan, np.float32))
        cut = kernel(rows, first, counts, table, ids, *out, np.zeros(1, np.float32))
        outs.append((cut, *out))
    assert outs[0][0] == outs[1][0] == int(np.maximum(counts - n, 0).sum())
    for a, b in zip(outs[0][1:], outs[1][1:]):
        assert a.tobytes() == b.tobytes()
    bad = _assemble_numpy(rows, np.array([490]), np.array([20]), table, np.array([0]), *(x[:1] for x in outs[1][1:]), None)
    assert bad == -1


def test_placement_wraps_over_finished_pieces_and_grows_when_it_must():
    from pcdata.loaders.window import _place

    size, first = np.array([4, 4, 4]), np.array([0, 1, 2])
    lo, ready, cap = _place(size, first, np.array([0, 1, 2]), 8)  # piece 0 is done before piece 2
    assert cap == 8 and lo.tolist() == [0, 4, 0] and ready.tolist() == [-1, -1, 0]
    lo, ready, cap = _place(size, first, np.array([5, 5, 5]), 8)  # all three live at once
    assert cap == 16 and lo.tolist() == [0, 4, 8] and ready.tolist() == [-1, -1, -1]
