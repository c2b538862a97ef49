import numpy as np
import pytest

from pcdata.loaders.order import ShuffleOptions, block_starts, hash_seed, plan_epoch, share


def _plan(n=5000, batch_size=32, epoch=0, selection=None, **kw):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 80, size=n)
    chunk_starts = np.unique(np.concatenate([[0], np.sort(rng.choice(n, n // 25, replace=False))]))
    blocks = block_starts(chunk_starts, np.array([0, n // 2]), None, counts)
    sel = np.arange(n) if selection is None else selection
    kw.setdefault("shuffle", True)
    return plan_epoch(sel, blocks, counts, batch_size=batch_size, seed=7, epoch=epoch, **kw), counts


@pytest.mark.parametrize("n, batch_size, lanes", [(5000, 32, 8), (5000, 7, 3), (100, 32, 8), (1, 4, 8), (0, 4, 2)])
def test_every_cloud_exactly_once(n, batch_size, lanes):
    plan, _ = _plan(n, batch_size, options=ShuffleOptions(lanes=lanes))
    assert np.array_equal(np.sort(plan.clouds()), np.arange(n))
    assert plan.num_batches == -(-n // batch_size)
    sizes = [len(plan.batch(k)) for k in range(plan.num_batches)]
    assert all(s == batch_size for s in sizes[:-1]) and (not sizes or 0 < sizes[-1] <= batch_size)


def test_selection_is_respected_and_split_stays_exact():
    sel = np.sort(np.random.default_rng(0).choice(5000, 1234, replace=False))
    plan, _ = _plan(selection=sel)
    assert np.array_equal(np.sort(plan.clouds()), sel)


@pytest.mark.parametrize("world_size, num_workers", [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2)])
def test_shares_are_disjoint_and_interleave_to_the_global_order(world_size, num_workers):
    plan, _ = _plan()
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
    plan, _ = _plan()
    rest = [share(plan.num_batches, rank=1, world_size=2, start=5, worker=w, num_workers=2) for w in range(2)]
    full = share(plan.num_batches, rank=1, world_size=2)
    merged = [rest[i % 2][i // 2] for i in range(len(full) - 5)]
    assert merged == list(full[5:])


def test_epochs_and_seeds_change_the_order_deterministically():
    a0, _ = _plan(epoch=0)
    b0, _ = _plan(epoch=0)
    a1, _ = _plan(epoch=1)
    assert np.array_equal(a0.clouds(), b0.clouds())
    assert not np.array_equal(a0.clouds(), a1.clouds())
    # Blocks are shuffled over the whole epoch, and each batch mixes several blocks.
    assert abs(np.corrcoef(np.arange(5000), a0.clouds())[0, 1]) < 0.4  # ~50 blocks: |r| ~ 0.14
    middle = a0.batch(8 * 5)  # batch 5 of lane 0: past the ramp-up at the start of a lane
    assert len(np.unique(a0.piece[middle])) >= 2


def test_buffer_shuffle_moves_clouds_at_most_buffer_size_places():
    plan, _ = _plan(options=ShuffleOptions(lanes=1, buffer_size=50), batch_size=10)
    assert np.abs(plan.order - np.arange(len(plan.order))).max() <= 50


def test_no_shuffle_is_store_order():
    plan, _ = _plan(shuffle=False)
    assert np.array_equal(plan.clouds(), np.arange(5000))


def test_drop_last_gives_every_rank_the_same_number_of_full_batches():
    plan, _ = _plan(n=1000, batch_size=32, drop_last=True, world_size=3)
    assert plan.num_batches == (1000 // 32 // 3) * 3 and len(plan.order) == plan.num_batches * 32
    full, _ = _plan(n=1000, batch_size=32)
    assert np.array_equal(plan.clouds(), full.clouds()[: len(plan.order)])  # a prefix of the same order


def test_bucketing_keeps_exactly_once_and_cuts_padding():
    plain, counts = _plan(batch_size=16)
    bucketed, _ = _plan(batch_size=16, options=ShuffleOptions(bucket=16))
    assert np.array_equal(np.sort(bucketed.clouds()), np.arange(5000))

    def padding(plan):
        return sum(len(plan.batch(k)) * counts[plan.seq[plan.batch(k)]].max() for k in range(plan.num_batches))

    assert padding(bucketed) < 0.8 * padding(plain)
    again, _ = _plan(batch_size=16, options=ShuffleOptions(bucket=16))
    assert np.array_equal(again.clouds(), bucketed.clouds())


def test_pieces_are_runs_of_one_block():
    plan, _ = _plan()
    starts = plan.piece_starts
    assert starts[0] == 0 and starts[-1] == len(plan.seq) and np.all(np.diff(starts) > 0)
    for a, b in zip(starts[:-1], starts[1:]):
        assert np.all(np.diff(plan.seq[a:b]) > 0)  # ascending inside a piece: one contiguous read


def test_hash_seed_is_stable():
    assert hash_seed(0, 0) == hash_seed(0, 0) != hash_seed(0, 1)
    assert hash_seed(-1) == hash_seed(2**64 - 1)


def test_invalid_options():
    with pytest.raises(ValueError, match="lanes"):
        ShuffleOptions(lanes=0)
    with pytest.raises(ValueError, match="buffer_size"):
        ShuffleOptions(buffer_size=0)
