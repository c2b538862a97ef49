import time

import numpy as np
import pytest

from pcdata.loaders.order import EpochPlan, Layout, ShuffleOptions, _uniform_at, fragment_blocks, hash_seed, share

N = 5000
COUNTS = np.random.default_rng(3).integers(0, 80, size=N)
FRAGMENTS = np.array([0, 1700, 1700, 3100, N])  # one empty fragment
SELECTION = np.random.default_rng(0).random(N) < 0.3


def _layout(n=N, block=100, selection=None):
    starts = np.unique(np.concatenate([FRAGMENTS[FRAGMENTS < n], [n]]))
    blocks = fragment_blocks(starts, block)
    member = None if selection is None else (lambda ids: selection[ids])
    return Layout.build(blocks, member)


def _plan(n=N, batch_size=32, epoch=0, selection=None, block=100, **kw):
    kw.setdefault("shuffle", True)
    return EpochPlan(_layout(n, block, selection), batch_size=batch_size, seed=7, epoch=epoch,
                     counts=lambda ids: COUNTS[ids], **kw)


def _reference(layout, counts, *, b, seed, epoch, lanes, buffer, bucket):
    """The whole epoch's order materialised the plain way: sort every segment in full."""
    nb = len(layout.blocks) - 1
    member = layout.member or (lambda ids: np.ones(len(ids), bool))
    per_block = [np.arange(layout.blocks[j], layout.blocks[j + 1]) for j in range(nb)]
    per_block = [ids[member(ids)] for ids in per_block]
    nonempty = np.array([j for j in range(nb) if len(per_block[j])], dtype=np.int64)
    nonempty = nonempty[np.argsort(_uniform_at(nonempty, seed, epoch, 1), kind="stable")]
    seq = np.concatenate([per_block[j] for j in nonempty]) if len(nonempty) else np.zeros(0, np.int64)
    n = len(seq)
    m = (n // (lanes * b)) * b
    segments = [(s * m, m) for s in range(lanes)] + [(lanes * m, n - lanes * m)]
    ranked = []
    for start, length in segments:
        p = np.arange(length)
        r = start + np.argsort(p + _uniform_at(start + p, seed, epoch, 2) * buffer, kind="stable")
        if bucket:
            out = []
            for w0 in range(0, length, bucket * b):
                win = r[w0 : w0 + bucket * b]
                win = win[np.argsort(counts[seq[win]], kind="stable")]
                place = np.arange(len(win))
                batch = (start + w0 + place) // b
                key = np.where(batch < n // b, _uniform_at(batch, seed, epoch, 3), 2.0)
                out.append(win[np.lexsort((place, key))])
            r = np.concatenate(out) if out else r
        ranked.append(r)
    lane_batches = [ranked[s].reshape(-1, b) for s in range(lanes)] if m else []
    order = [lane_batches[s][j] for j in range(m // b) for s in range(lanes)]
    order += [ranked[lanes][i : i + b] for i in range(0, n - lanes * m, b)]
    return [seq[o] for o in order]


@pytest.mark.parametrize("batch_size, lanes, buffer, bucket, selected", [
    (32, 8, None, None, False), (7, 3, None, None, True), (32, 2, 5, None, False), (16, 4, 700, None, True),
    (16, 8, None, 4, False), (10, 3, 40, 3, True), (64, 1, 3000, None, False),
    (6, 4, None, 4, False)])  # a tail of one full and one partial batch: the partial one stays last
def test_windowed_plan_equals_the_full_sort(batch_size, lanes, buffer, bucket, selected):
    """Batches worked out from a window around them equal the epoch sorted whole (per segment)."""
    options = ShuffleOptions(lanes=lanes, buffer_size=buffer, bucket=bucket)
    plan = _plan(batch_size=batch_size, options=options, selection=SELECTION if selected else None)
    want = _reference(plan.layout, COUNTS, b=batch_size, seed=7, epoch=0, lanes=lanes, buffer=plan.buffer, bucket=bucket)
    assert plan.num_batches == len(want)
    # Out of order too: a window is worked out for whichever batch is asked.
    for k in np.random.default_rng(1).permutation(plan.num_batches):
        np.testing.assert_array_equal(plan.batch(int(k)), want[k])


@pytest.mark.parametrize("n, batch_size, lanes", [(5000, 32, 8), (5000, 7, 3), (100, 32, 8), (1, 4, 8), (0, 4, 2)])
def test_every_cloud_exactly_once(n, batch_size, lanes):
    plan = _plan(n, batch_size, options=ShuffleOptions(lanes=lanes))
    assert np.array_equal(np.sort(plan.clouds()), np.arange(n))
    assert plan.num_batches == -(-n // batch_size)
    sizes = [len(plan.batch(k)) for k in range(plan.num_batches)]
    assert all(s == batch_size for s in sizes[:-1]) and (not sizes or 0 < sizes[-1] <= batch_size)


def test_selection_is_respected():
    plan = _plan(selection=SELECTION)
    assert np.array_equal(np.sort(plan.clouds()), np.flatnonzero(SELECTION))
    assert plan.layout.num_clouds == SELECTION.sum()
    ranks = np.array([0, 5, 700, SELECTION.sum() - 1])
    np.testing.assert_array_equal(plan.layout.select_at(ranks), np.flatnonzero(SELECTION)[ranks])


def test_blocks_cut_fragments_and_never_span_two():
    blocks = fragment_blocks(FRAGMENTS, 400)
    assert blocks[0] == 0 and blocks[-1] == N and np.all(np.diff(blocks) > 0)
    assert set(FRAGMENTS[:-1]) <= set(blocks.tolist())
    assert np.diff(blocks).max() == 400
    frag = np.searchsorted(FRAGMENTS, blocks[:-1], side="right") - 1
    assert np.all(blocks[1:] <= FRAGMENTS[frag + 1])


@pytest.mark.parametrize("world_size, num_workers", [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2)])
def test_shares_are_disjoint_and_interleave_to_the_global_order(world_size, num_workers):
    plan = _plan()
    ranks = []
    for r in range(world_size):
        workers = [share(plan.num_batches, rank=r, world_size=world_size, worker=w, num_workers=num_workers)
                   for w in range(num_workers)]
        # DataLoader's round-robin over workers, then ranks batch by batch.
        stream = [w[i] for i in range(max(map(len, workers))) for w in workers if i < len(w)]
        ranks.append(stream)
    glob = [ranks[r][i] for i in range(max(map(len, ranks))) for r in range(world_size) if i < len(ranks[r])]
    assert glob == list(range(plan.num_batches))


def test_resume_start_shifts_the_worker_assignment():
    plan = _plan()
    rest = [share(plan.num_batches, rank=1, world_size=2, start=5, worker=w, num_workers=2) for w in range(2)]
    full = share(plan.num_batches, rank=1, world_size=2)
    merged = [rest[i % 2][i // 2] for i in range(len(full) - 5)]
    assert merged == list(full[5:])


def test_epochs_and_seeds_change_the_order_deterministically():
    a0, b0, a1 = _plan(epoch=0), _plan(epoch=0), _plan(epoch=1)
    assert np.array_equal(a0.clouds(), b0.clouds())
    assert not np.array_equal(a0.clouds(), a1.clouds())
    # Blocks are shuffled over the whole epoch, and each batch mixes several blocks.
    assert abs(np.corrcoef(np.arange(N), a0.clouds())[0, 1]) < 0.4  # ~50 blocks: |r| ~ 0.14
    middle = a0.batch(8 * 5)  # batch 5 of lane 0: past the ramp-up at the start of a lane
    assert len(np.unique(np.searchsorted(a0.layout.blocks, middle, side="right"))) >= 2


def test_buffer_shuffle_moves_clouds_at_most_buffer_size_places():
    plan = _plan(options=ShuffleOptions(lanes=1, buffer_size=50), batch_size=10)
    positions = np.concatenate([plan.positions(k) for k in range(plan.num_batches)])
    moved = np.abs(positions - np.arange(len(positions)))
    assert moved.max() <= 50 and moved.max() > 25


def test_no_shuffle_is_store_order():
    assert np.array_equal(_plan(shuffle=False).clouds(), np.arange(N))
    assert np.array_equal(_plan(shuffle=False, selection=SELECTION).clouds(), np.flatnonzero(SELECTION))


def test_drop_last_gives_every_rank_the_same_number_of_full_batches():
    plan = _plan(n=1000, batch_size=32, drop_last=True, world_size=3)
    assert plan.num_batches == (1000 // 32 // 3) * 3
    assert len(plan.clouds()) == plan.num_batches * 32
    full = _plan(n=1000, batch_size=32)
    assert np.array_equal(plan.clouds(), full.clouds()[: plan.num_batches * 32])  # a prefix of the same order
    with pytest.raises(IndexError):
        plan.batch(plan.num_batches)


def test_bucketing_keeps_exactly_once_and_cuts_padding():
    plain = _plan(batch_size=16)
    bucketed = _plan(batch_size=16, options=ShuffleOptions(bucket=16))
    assert np.array_equal(np.sort(bucketed.clouds()), np.arange(N))

    def padding(plan):
        return sum(len(plan.batch(k)) * COUNTS[plan.batch(k)].max() for k in range(plan.num_batches))

    assert padding(bucketed) < 0.8 * padding(plain)
    assert np.array_equal(_plan(batch_size=16, options=ShuffleOptions(bucket=16)).clouds(), bucketed.clouds())


def test_round_pieces_are_ascending_runs_of_one_block():
    plan = _plan(selection=SELECTION, batch_size=16)
    batches = share(plan.num_batches, rank=1, world_size=2)[:20]
    rd = plan.round(batches)
    starts = rd.piece_starts
    assert starts[0] == 0 and starts[-1] == len(rd.seq) and np.all(np.diff(starts) > 0)
    for a, b in zip(starts[:-1], starts[1:]):
        assert np.all(np.diff(rd.seq[a:b]) > 0)  # ascending inside a piece: one contiguous read
        assert len(np.unique(np.searchsorted(plan.layout.blocks, rd.seq[a:b], side="right"))) == 1
    for t, k in enumerate(batches):
        np.testing.assert_array_equal(rd.seq[rd.batch(t)], plan.batch(int(k)))


def test_a_billion_clouds_plan_in_memory_of_blocks_not_clouds():
    """10^9 clouds in 10^5 fragments: the plan holds per-block numbers and finds any batch at once."""
    starts = np.arange(0, 10**9 + 1, 10**4, dtype=np.int64)
    t0 = time.perf_counter()
    layout = Layout.build(fragment_blocks(starts, 4096))
    plan = EpochPlan(layout, batch_size=256, shuffle=True, seed=1, epoch=3, options=ShuffleOptions(bucket=None))
    held = layout.blocks.nbytes + layout.selected.nbytes + plan._sblocks.nbytes + plan._scum.nbytes
    assert held < 20 * len(layout.blocks) * 8 and held < 64 << 20  # a few int64 per block: ~10 MB
    ids = plan.batch(plan.num_batches // 2)
    assert len(ids) == 256 and len(np.unique(ids)) == 256 and ids.max() < 10**9
    assert time.perf_counter() - t0 < 30


def test_hash_seed_is_stable():
    assert hash_seed(0, 0) == hash_seed(0, 0) != hash_seed(0, 1)
    assert hash_seed(-1) == hash_seed(2**64 - 1)


def test_invalid_options():
    with pytest.raises(ValueError, match="lanes"):
        ShuffleOptions(lanes=0)
    with pytest.raises(ValueError, match="buffer_size"):
        ShuffleOptions(buffer_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        _plan(batch_size=0)


# -- the stream, the layout and the rounds pinned down (mutation testing found these untested) -----
_G, _M = 0x9E3779B97F4A7C15, (1 << 64) - 1


def _py_mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def _py_hash(*words):
    state = 0
    for w in words:
        state = _py_mix((state + _G + (w & _M)) & _M)
    return state


def test_the_shuffle_stream_equals_its_definition_in_plain_integers():
    # The method (fragment-blocks-lanes-window-v2) names this stream: resumed runs depend on it.
    for words in [(0,), (7, 3, 1), (2**64 - 1, 5), (-1, 0, 2)]:
        assert hash_seed(*words) == _py_hash(*words)
    idx = np.array([0, 1, 5, 2**40])
    base = _py_hash(9, 2, 1)
    want = [(_py_mix((base + (i + 1) * _G) & _M) >> 11) / 2.0**53 for i in idx.tolist()]
    assert _uniform_at(idx, 9, 2, 1).tolist() == want


def test_a_selection_is_counted_the_same_in_spans(monkeypatch):
    import pcdata.loaders.order as order

    member = lambda ids: SELECTION[ids]  # noqa: E731
    blocks = fragment_blocks(FRAGMENTS, 100)
    whole = Layout.build(blocks, member)
    assert whole.selected.tolist() == [int(SELECTION[a:b].sum()) for a, b in zip(blocks[:-1], blocks[1:])]
    monkeypatch.setattr(order, "_SPAN", 333)  # spans that cut blocks
    assert np.array_equal(Layout.build(blocks, member).selected, whole.selected)
    ranks = np.array([0, 5, whole.num_clouds - 1])
    assert whole.select_at(ranks).tolist() == np.flatnonzero(SELECTION)[ranks].tolist()
    assert whole.select_at(ranks).dtype == np.int64


def test_a_selection_that_changes_under_the_plan_is_an_error():
    flip = SELECTION.copy()
    layout = Layout.build(fragment_blocks(FRAGMENTS, 100), lambda ids: flip[ids])
    plan = EpochPlan(layout, batch_size=32, shuffle=True, seed=1, epoch=0)
    flip[:] = ~flip
    with pytest.raises(RuntimeError, match=r"^the selection of a block changed while the loader read it \(store rewritten\?\)$"):
        plan.batch(0)


@pytest.mark.parametrize("lanes", [1, 3])
def test_round_pieces_are_numbered_in_order_and_cover_every_batch_of_a_round(lanes):
    plan = _plan(selection=SELECTION, batch_size=16, options=ShuffleOptions(lanes=lanes, buffer_size=40))
    per_round = plan.round_batches(readers=2)
    assert per_round % plan.lanes == 0 and per_round >= 32
    assert (per_round // plan.lanes) % (plan._span // 16) == 0  # whole windows of every lane
    assert plan.round_batches(readers=40) >= 16 * 40
    batches = np.arange(0, plan.num_batches)
    rd = plan.round(batches)
    np.testing.assert_array_equal(rd.piece, np.repeat(np.arange(len(rd.piece_starts) - 1), np.diff(rd.piece_starts)))
    assert rd.seq.dtype == rd.piece.dtype == rd.order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(rd.seq), np.flatnonzero(SELECTION))  # the whole epoch, once
    for t, k in enumerate(batches):
        np.testing.assert_array_equal(rd.seq[rd.batch(t)], plan.batch(int(k)))
    empty = plan.round(np.zeros(0, np.int64))
    assert len(empty.seq) == 0 and empty.seq.dtype == np.int64 and empty.piece_starts.tolist() == [0]


def test_boundaries_of_the_options_and_their_messages():
    assert _plan(batch_size=1).num_batches == N
    assert ShuffleOptions(buffer_size=1, block_clouds=1, bucket=1, lanes=1).lanes == 1
    with pytest.raises(ValueError, match=r"^ShuffleOptions.bucket must be >= 1 or None, got 0$"):
        ShuffleOptions(bucket=0)
    with pytest.raises(ValueError, match=r"^ShuffleOptions.block_clouds must be >= 1 or None, got -2$"):
        ShuffleOptions(block_clouds=-2)
    with pytest.raises(ValueError, match=r"^bucketing needs the clouds' counts$"):
        EpochPlan(_layout(), batch_size=8, shuffle=True, seed=1, epoch=0, options=ShuffleOptions(bucket=4))
    plan = _plan()
    with pytest.raises(IndexError, match=rf"^batch {plan.num_batches} out of range for an epoch of {plan.num_batches} batches$"):
        plan.positions(plan.num_batches)
    with pytest.raises(IndexError, match="out of range"):
        plan.positions(-1)
    nothing = _plan(selection=np.zeros(N, bool))
    assert nothing.num_batches == 0 and nothing.clouds().dtype == np.int64 and len(nothing.clouds()) == 0
    ids, blocks = plan.ids(np.zeros(0, np.int64))
    assert ids.dtype == blocks.dtype == np.int64 and len(ids) == len(blocks) == 0


def test_defaults_world_size_buffer_and_blocks():
    n_sel = int(SELECTION.sum())
    b = next(b for b in range(30, 60) if (n_sel // b) % 2 == 1)  # an odd number of batches
    plan = EpochPlan(_layout(selection=SELECTION), batch_size=b, shuffle=True, seed=1, epoch=0, drop_last=True)
    assert plan.num_batches == n_sel // b  # one rank unless told
    nonempty = int((plan.layout.selected > 0).sum())
    assert plan.buffer == max(2 * b, int(2 * n_sel / nonempty))  # the documented default reach
    one_block = np.zeros(N, bool)
    one_block[:50] = True
    assert _plan(selection=one_block, batch_size=8).buffer == 100  # 2 x 50 clouds in the one block
    assert plan.round_batches() == plan.round_batches(1)
    assert fragment_blocks(np.array([0, 3, 5]), 1).tolist() == [0, 1, 2, 3, 4, 5]
    assert fragment_blocks(np.array([0, 3, 5]), 0).tolist() == [0, 1, 2, 3, 4, 5]  # at least one cloud a block
    everything = Layout.build(fragment_blocks(FRAGMENTS, 100), lambda ids: np.ones(len(ids), bool))
    plain = Layout.build(fragment_blocks(FRAGMENTS, 100))
    assert plain.member is None and np.array_equal(everything.selected, plain.selected)
    assert plain.selected.sum() == N


def test_no_shuffle_ignores_bucketing_and_a_tiny_selection_is_one_tail_segment():
    plan = _plan(selection=SELECTION, shuffle=False, options=ShuffleOptions(bucket=4))
    np.testing.assert_array_equal(plan.clouds(), np.flatnonzero(SELECTION))
    few = np.zeros(N, bool)
    few[[3, 1800, 1801, 4000, 4999]] = True
    tiny = _plan(selection=few, batch_size=2, options=ShuffleOptions(lanes=8))
    assert tiny._m == 0 and tiny.num_batches == 3
    rd = tiny.round(np.arange(3))
    assert sorted(rd.seq.tolist()) == [3, 1800, 1801, 4000, 4999]
    for t in range(3):
        np.testing.assert_array_equal(rd.seq[rd.batch(t)], tiny.batch(t))


@pytest.mark.parametrize("lanes, readers", [(1, 1), (3, 2), (8, 40)])
def test_a_round_is_whole_windows_of_every_lane_and_16_batches_a_reader(lanes, readers):
    plan = _plan(selection=SELECTION, batch_size=16, options=ShuffleOptions(lanes=lanes, buffer_size=40))
    w = plan._span // 16
    per_lane = max(w, -(-16 * readers // lanes))
    got = plan.round_batches(readers)
    assert type(got) is int and got == lanes * (-(-per_lane // w) * w)


def test_round_pieces_are_maximal_runs():
    plan = _plan(selection=SELECTION, batch_size=16, options=ShuffleOptions(lanes=2, buffer_size=40))
    rd = plan.round(np.arange(plan.num_batches))
    block = np.searchsorted(plan.layout.blocks, rd.seq[rd.piece_starts[:-1]], side="right")
    # A new piece starts at a new block, or where a segment ends (at most one per segment).
    assert int((np.diff(block) == 0).sum()) <= plan.lanes


@pytest.mark.parametrize("lanes", [2, 3])
def test_a_round_piece_never_spans_two_segments(lanes):
    """A piece is one block's run inside one segment: where a block straddles the boundary of two
    lanes' segments (or of the last lane and the tail), the run is cut there."""
    plan = _plan(selection=SELECTION, batch_size=16, options=ShuffleOptions(lanes=lanes, buffer_size=40))
    segment = {}
    for k in range(plan.num_batches):
        for cloud in plan.batch(k).tolist():
            segment[cloud] = plan._where(k)[0]
    rd = plan.round(np.arange(plan.num_batches))
    seg = np.array([segment[c] for c in rd.seq.tolist()])
    starts = rd.piece_starts
    for a, b in zip(starts[:-1], starts[1:]):
        assert len(np.unique(seg[a:b])) == 1, (a, b)
    block = np.searchsorted(plan.layout.blocks, rd.seq, side="right")
    # The case is really there: pieces cut inside one block, at a segment's end.
    cut_in_block = [a for a in starts[1:-1] if block[a] == block[a - 1]]
    assert cut_in_block and all(seg[a] != seg[a - 1] for a in cut_in_block)
