import numpy as np
import pytest
import torch

from pcdata.loaders import PointCloudLoader, ShuffleOptions
from tests.loaders.conftest import collect, order_of


def _check_batch_content(store, batch, pad=None):
    idx = batch["index"].numpy()
    ref = store.take(idx).padded(pad)
    np.testing.assert_array_equal(batch["points"].numpy(), ref.points)
    np.testing.assert_array_equal(batch["mask"].numpy(), ref.mask)
    np.testing.assert_array_equal(batch["counts"].numpy(), store.counts[idx])
    fields = np.stack([store.field(n)[idx].astype(np.float32) for n in store.cloud_features], axis=1)
    np.testing.assert_array_equal(batch["cloud"].numpy(), fields)


def test_batches_have_the_documented_shapes_and_the_store_content(jet_store):
    loader = PointCloudLoader(jet_store, split=None, batch_size=64)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-jet_store.num_clouds // 64)
    b = batches[3]
    assert b["points"].dtype == torch.float32 and b["points"].shape[:2] == b["mask"].shape
    assert b["mask"].dtype == torch.bool and b["cloud"].shape == (64, 3) and b["index"].dtype == torch.int64
    for b in batches[:3] + batches[-2:]:
        _check_batch_content(jet_store, b)
    assert b["points"].shape[1] == int(b["counts"].max())  # pad="batch": the batch's longest cloud


def test_every_cloud_exactly_once_per_epoch(jet_store):
    loader = PointCloudLoader(jet_store, split=None, batch_size=50)
    for _ in range(2):
        assert np.array_equal(np.sort(order_of(loader)), np.arange(jet_store.num_clouds))
    train = PointCloudLoader(jet_store, split="train", batch_size=50)
    assert np.array_equal(np.sort(order_of(train)), jet_store.split_indices("train"))
    assert train.num_clouds == len(jet_store.split_indices("train"))


def test_epochs_differ_and_the_same_epoch_repeats(jet_store):
    loader = PointCloudLoader(jet_store, split=None, batch_size=32, seed=3)
    e0 = order_of(loader)  # a finished pass moves on to the next epoch
    e1 = order_of(loader)
    loader.set_epoch(0)
    again = order_of(loader)
    assert loader.epoch == 1 and np.array_equal(e0, again) and not np.array_equal(e0, e1)
    other_seed = PointCloudLoader(jet_store, split=None, batch_size=32, seed=4)
    assert not np.array_equal(order_of(other_seed), e0)
    assert np.array_equal(loader.plan(0).clouds(), e0)


def test_same_global_order_for_any_number_of_ranks(jet_store):
    reference = order_of(PointCloudLoader(jet_store, split=None, batch_size=40, seed=1))
    for world_size in (2, 3):
        ranks = [[b["index"].numpy() for b in PointCloudLoader(jet_store, split=None, batch_size=40, seed=1,
                                                                rank=r, world_size=world_size)]
                 for r in range(world_size)]
        sets = [set(np.concatenate(r).tolist()) for r in ranks]
        assert all(not (sets[i] & sets[j]) for i in range(world_size) for j in range(i + 1, world_size))
        merged = [ranks[r][i] for i in range(len(ranks[0])) for r in range(world_size) if i < len(ranks[r])]
        assert np.array_equal(np.concatenate(merged), reference)


@pytest.mark.slow
def test_workers_give_the_same_stream_and_resume_mid_epoch(jet_store):
    """Two DataLoader workers: the same batches as in-process reading, and a resume in the
    middle of an epoch continues the identical stream (one test: worker start-up is slow)."""
    kw = dict(split=None, batch_size=48, seed=5, pad=40)
    reference = collect(PointCloudLoader(jet_store, **kw))
    workers = PointCloudLoader(jet_store, num_workers=2, **kw)
    first = []
    for i, batch in enumerate(workers):
        first.append(batch)
        if i == 6:
            break
    state = workers.state_dict()
    assert state["batches"] == 7
    resumed = PointCloudLoader(jet_store, num_workers=2, **kw)
    resumed.load_state_dict(state)
    rest = list(resumed)
    got = first + rest
    assert len(got) == len(reference["index"])
    for key in ("index", "points", "mask", "cloud", "counts"):
        for a, b in zip(got, reference[key]):
            np.testing.assert_array_equal(a[key].numpy(), b)


def test_resume_equals_the_uninterrupted_stream(jet_store):
    kw = dict(split="train", batch_size=30, seed=2)
    full = PointCloudLoader(jet_store, **kw)
    full.set_epoch(3)
    reference = [b["index"].numpy() for b in full]
    loader = PointCloudLoader(jet_store, **kw)
    loader.set_epoch(3)
    head = []
    for batch in loader:
        head.append(batch["index"].numpy())
        if len(head) == 11:
            break
    state = loader.state_dict()
    assert {"epoch": 3, "seed": 2, "batches": 11}.items() <= state.items()
    # A fresh loader (a restarted job) and the same loader both continue where it stopped.
    fresh = PointCloudLoader(jet_store, **kw)
    fresh.load_state_dict(state)
    assert np.array_equal(np.concatenate(head + [b["index"].numpy() for b in fresh]), np.concatenate(reference))
    assert np.array_equal(np.concatenate(head + [b["index"].numpy() for b in loader]), np.concatenate(reference))
    assert fresh.state_dict()["epoch"] == 4 and fresh.state_dict()["batches"] == 0


def test_resume_on_another_number_of_ranks(jet_store):
    kw = dict(split=None, batch_size=25, seed=8)
    reference = np.concatenate([b["index"].numpy() for b in PointCloudLoader(jet_store, **kw)])
    rank0 = PointCloudLoader(jet_store, rank=0, world_size=2, **kw)
    it = iter(rank0)
    for _ in range(4):
        next(it)
    single = PointCloudLoader(jet_store, **kw)
    single.load_state_dict(rank0.state_dict())  # 4 batches on each of 2 ranks = 8 global batches
    assert np.array_equal(np.concatenate([b["index"].numpy() for b in single]), reference[8 * 25 :])
    odd = PointCloudLoader(jet_store, rank=0, world_size=2, **kw)
    with pytest.raises(ValueError, match="cannot resume"):
        odd.load_state_dict({**single.state_dict(), "batches": 3, "world_size": 1})


def test_state_of_another_stream_is_refused(jet_store):
    loader = PointCloudLoader(jet_store, split=None, batch_size=25, seed=8)
    state = loader.state_dict()
    for key, value in (("seed", 9), ("batch_size", 26), ("split", "val")):
        with pytest.raises(ValueError, match=key):
            loader.load_state_dict({**state, key: value})


def test_fixed_padding_truncates_and_counts_the_points_cut(jet_store):
    loader = PointCloudLoader(jet_store, split=None, batch_size=64, pad=20, shuffle=False)
    batches = list(loader)
    assert all(b["points"].shape[1] == 20 for b in batches)
    counts = jet_store.counts
    assert loader.points_truncated == int(np.maximum(counts - 20, 0).sum()) > 0
    _check_batch_content(jet_store, batches[5], pad=20)  # the first 20 points: the hardest
    np.testing.assert_array_equal(batches[5]["mask"].sum(1).numpy(), np.minimum(batches[5]["counts"].numpy(), 20))


def test_no_shuffle_streams_in_store_order(jet_store):
    assert np.array_equal(order_of(PointCloudLoader(jet_store, split=None, batch_size=64, shuffle=False)),
                          np.arange(jet_store.num_clouds))


def test_bucketing_is_deterministic_exactly_once_and_pads_less(shower_store):
    kw = dict(split=None, batch_size=16, seed=1)
    plain = collect(PointCloudLoader(shower_store, **kw))
    bucketed = collect(PointCloudLoader(shower_store, bucket=8, **kw))
    again = collect(PointCloudLoader(shower_store, bucket=8, **kw))
    idx = np.concatenate(bucketed["index"])
    assert np.array_equal(np.sort(idx), np.arange(shower_store.num_clouds))
    assert np.array_equal(idx, np.concatenate(again["index"]))
    padded = lambda got: sum(m.size for m in got["mask"])  # noqa: E731
    assert padded(bucketed) < 0.8 * padded(plain)


def test_drop_last_gives_equal_full_batches_on_every_rank(jet_store):
    loaders = [PointCloudLoader(jet_store, split=None, batch_size=64, drop_last=True, rank=r, world_size=2)
               for r in range(2)]
    batches = [list(loader) for loader in loaders]
    assert len(batches[0]) == len(batches[1]) == len(loaders[0])
    assert all(len(b["index"]) == 64 for bs in batches for b in bs)


def test_features_fields_and_cache(jet_store):
    kw = dict(split="val", batch_size=32, features=["pt_rel", "eta_rel"], fields=["n"])
    streamed = collect(PointCloudLoader(jet_store, **kw))
    cached = collect(PointCloudLoader(jet_store, cache=True, **kw).preload())
    for key in streamed:
        for a, b in zip(streamed[key], cached[key]):
            np.testing.assert_array_equal(a, b)
    idx = streamed["index"][0]
    ref = jet_store.take(idx).padded()
    np.testing.assert_array_equal(streamed["points"][0], ref.points[..., [2, 0]])
    np.testing.assert_array_equal(streamed["cloud"][0][:, 0], jet_store.field("n")[idx])


def test_options_are_checked(jet_store):
    with pytest.raises(KeyError, match="no split 'dev'"):
        PointCloudLoader(jet_store, split="dev")
    with pytest.raises(KeyError, match="no point feature 'mass'"):
        PointCloudLoader(jet_store, features=["mass"])
    with pytest.raises(KeyError, match="no cloud field"):
        PointCloudLoader(jet_store, fields=["charge"])
    with pytest.raises(ValueError, match="pad must be"):
        PointCloudLoader(jet_store, pad=0)
    with pytest.raises(ValueError, match="both rank and world_size"):
        PointCloudLoader(jet_store, rank=1)
    with pytest.raises(ValueError, match="rank must be"):
        PointCloudLoader(jet_store, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        PointCloudLoader(jet_store, batch_size=0)


def test_opens_a_path_and_small_memory_options(jet_store):
    loader = PointCloudLoader(str(jet_store.path), split=None, batch_size=100,
                              shuffle_options=ShuffleOptions(lanes=2, buffer_size=100, block_clouds=50))
    assert np.array_equal(np.sort(order_of(loader)), np.arange(jet_store.num_clouds))
    assert "PointCloudLoader" in repr(loader)


def test_two_iterations_at_once_do_not_share_buffers(jet_store):
    # Two live iterators over one loader (as zip(loader, loader) makes): each reads into its own
    # buffers, so neither corrupts the other's batches.
    loader = PointCloudLoader(jet_store, split=None, batch_size=64, seed=4)
    list(loader)  # leaves buffers behind for the next epoch to reuse
    loader.set_epoch(0)
    for a, b in zip(iter(loader), iter(loader)):
        _check_batch_content(jet_store, a)
        _check_batch_content(jet_store, b)


def test_a_store_of_raw_chunks_is_gathered_from_the_page_cache(tmp_path, jets):
    from pcdata.store import ChunkSpec, write_store
    from pcdata import open_store
    from tests.loaders.conftest import jets_meta

    write_store(tmp_path / "raw", jets, jets_meta(), clouds_per_fragment=1100,
                chunks=ChunkSpec(points_rows=1024, clouds=500, cname="none"))
    raw = open_store(tmp_path / "raw")
    kw = dict(split="train", batch_size=48, seed=2)
    loader = PointCloudLoader(raw, **kw)
    assert loader._source.mapped_rows() is not None  # the mapped path, not the ring
    mapped = collect(loader)
    for key, want in collect(PointCloudLoader(raw, cache=True, **kw)).items():
        for a, b in zip(mapped[key], want):
            np.testing.assert_array_equal(a, b)
    with_workers = collect(PointCloudLoader(raw, num_workers=2, **kw))
    for a, b in zip(mapped["points"], with_workers["points"]):
        np.testing.assert_array_equal(a, b)
    for batch in PointCloudLoader(raw, pad=20, **kw):
        _check_batch_content(raw, batch, pad=20)
    assert np.array_equal(np.sort(np.concatenate(mapped["index"])), raw.split_indices("train"))


def test_the_sample_transforms_are_fitted_on_is_spread_over_the_selection(jet_store):
    """Binding measures statistics on a sample: clouds evenly spread over the loader's split, with
    the loader's feature columns and fields, padded as a batch."""
    loader = PointCloudLoader(jet_store, split="train", batch_size=50, features=["pt_rel", "eta_rel"], fields=["eta"])
    train = jet_store.split_indices("train")
    for wanted in (100, 10**6):
        b = loader._source.sample(max_clouds=wanted)
        n = min(wanted, len(train))
        ids = train[np.linspace(0, len(train) - 1, num=n).astype(np.int64)]
        assert np.array_equal(b["index"].numpy(), ids)
        counts = jet_store.counts[ids]
        assert np.array_equal(b["counts"].numpy(), counts) and np.array_equal(b["mask"].numpy().sum(1), counts)
        clouds = jet_store.take(ids)
        for k in (0, n // 2, n - 1):
            pts = clouds.points[clouds.offsets[k]:clouds.offsets[k + 1]]
            np.testing.assert_array_equal(b["points"].numpy()[k, : counts[k]], pts[:, [2, 0]])
        np.testing.assert_array_equal(b["cloud"].numpy()[:, 0], jet_store.fields_of(ids, ["eta"])[:, 0])


def test_the_state_is_the_documented_record_and_every_key_that_must_match_is_checked(jet_store):
    loader = PointCloudLoader(jet_store, split="train", batch_size=25, seed=8)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state == {"method": "fragment-blocks-lanes-window-v2", "epoch": 0, "seed": 8, "batches": 3,
                     "batch_size": 25, "world_size": 1, "split": "train", "num_clouds": loader.num_clouds}
    for key, value in (("method", "another-method"), ("num_clouds", loader.num_clouds + 1), ("split", None)):
        with pytest.raises(ValueError, match=rf"^loader state is for {key}={value!r}, this loader has {key}="):
            PointCloudLoader(jet_store, split="train", batch_size=25, seed=8).load_state_dict({**state, key: value})
    # Only epoch and batches are required: a state without the world size is of this world size.
    bare = PointCloudLoader(jet_store, split="train", batch_size=25, seed=8)
    bare.load_state_dict({"epoch": 0, "batches": 3})
    assert bare.state_dict() == state


def test_a_resume_onto_more_ranks_splits_the_batches_consumed(jet_store):
    kw = dict(split=None, batch_size=25, seed=8)
    reference = np.concatenate([b["index"].numpy() for b in PointCloudLoader(jet_store, **kw)])
    state = {"epoch": 0, "batches": 2, "world_size": 2}  # 4 global batches consumed
    ranks = [PointCloudLoader(jet_store, rank=r, world_size=4, **kw) for r in range(4)]
    for loader in ranks:
        loader.load_state_dict(state)
        assert loader.state_dict()["batches"] == 1
    streams = [[b["index"].numpy() for b in loader] for loader in ranks]
    merged = [streams[r][i] for i in range(len(streams[0])) for r in range(4) if i < len(streams[r])]
    assert np.array_equal(np.concatenate(merged), reference[4 * 25 :])


def test_set_epoch_refuses_a_negative_epoch(jet_store):
    with pytest.raises(ValueError, match=r"^epoch must be >= 0, got -1$"):
        PointCloudLoader(jet_store, split=None).set_epoch(-1)


def test_a_single_transform_is_a_pipeline_of_one(jet_store):
    from pcdata.loaders.transforms import Standardize

    one = PointCloudLoader(jet_store, split="val", batch_size=40, transforms=Standardize(["pt_rel"]))
    listed = PointCloudLoader(jet_store, split="val", batch_size=40, transforms=[Standardize(["pt_rel"])])
    assert one.transforms.to_dict() == listed.transforms.to_dict() and len(one.transforms) == 1
    for a, b in zip(one, listed):
        np.testing.assert_array_equal(a["points"].numpy(), b["points"].numpy())


def test_worker_options_reach_the_workers_and_a_slot_holds_the_largest_batch(jet_store):
    from pcdata.loaders import WorkerOptions

    with pytest.raises(ValueError, match=r"^WorkerOptions.prefetch must be >= 1, got 0$"):
        WorkerOptions(prefetch=0)
    assert WorkerOptions(prefetch=1).prefetch == 1
    opts = WorkerOptions(prefetch=3, start_method="spawn", timeout=7.5, pin_memory=True)
    for pad in (20, "batch"):
        loader = PointCloudLoader(jet_store, split=None, batch_size=64, pad=pad, shuffle=False, num_workers=2,
                                  worker_options=opts)
        pool = loader._workers(0, 0)
        assert pool.slots == 4 and pool.ctx.get_start_method() == "spawn" and pool.timeout == 7.5
        assert pool.pin is None  # no CUDA here: nothing to pin into
        # The largest batch the options allow: full, padded to the pad or to the longest cloud.
        width = 20 if pad == 20 else jet_store.max_points
        full = next(iter(PointCloudLoader(jet_store, split=None, batch_size=64, pad=width, shuffle=False)))
        largest = sum(t.numel() * t.element_size() for t in full.values())
        assert pool.slot_bytes == -(-(int(1.25 * largest) + 1024) // 64) * 64  # a quarter more, and 1 KiB


def test_pinned_memory_without_cuda_streams_the_plain_batches(jet_store):
    from pcdata.loaders import WorkerOptions

    kw = dict(split="val", batch_size=64, seed=1)
    reference = collect(PointCloudLoader(jet_store, **kw))
    for workers in (0, 2):
        got = collect(PointCloudLoader(jet_store, num_workers=workers, worker_options=WorkerOptions(pin_memory=True), **kw))
        for key in reference:
            for a, b in zip(got[key], reference[key]):
                np.testing.assert_array_equal(a, b)


def test_the_cache_holds_the_loaded_columns_as_float32(jet_store):
    loader = PointCloudLoader(jet_store, split=None, features=["pt_rel", "eta_rel"], cache=True).preload()
    rows = loader._source.cached_rows()
    assert rows.dtype == np.float32 and rows.shape == (jet_store.num_points, 2)
    np.testing.assert_array_equal(rows, jet_store.read().points[:, [2, 0]])


def _one_long_cloud(path, n, long):
    from pcdata import Clouds
    from pcdata.store import write_store
    from tests.loaders.conftest import jets_meta

    counts = np.ones(n, np.int64)
    counts[n // 2] = long
    off = np.concatenate([[0], np.cumsum(counts)])
    clouds = Clouds(np.zeros((off[-1], 3), np.float32), off, {"pt": np.ones(n, np.float32), "eta": np.zeros(n, np.float32),
                    "n": counts.astype(np.int32)}, ("eta_rel", "phi_rel", "pt_rel"))
    write_store(path, clouds, jets_meta(), clouds_per_fragment=n)
    return path


@pytest.mark.parametrize("long, size", [(1, 4096), (1 << 14, 2048), (1 << 18, 256)])
def test_the_binding_sample_keeps_under_2_25_points_but_takes_at_least_256_clouds(tmp_path, long, size):
    # At most 4096 clouds by default; 2**25 / 2**14 = 2048 clouds padded to the longest; 2**25 / 2**18 =
    # 128, raised to the floor of 256.
    loader = PointCloudLoader(_one_long_cloud(tmp_path / "s", 5000, long), split=None)
    b = loader._source.sample()
    assert len(b["index"]) == size and b["counts"].dtype == torch.int64
    np.testing.assert_array_equal(b["index"].numpy(), np.linspace(0, 4999, num=size).astype(np.int64))


def test_the_binding_sample_of_an_empty_selection_is_an_empty_batch(tmp_path):
    path = _one_long_cloud(tmp_path / "s", 1, 3)
    from pcdata import open_store

    empty = next(name for name in ("train", "val", "test") if not len(open_store(path).split_indices(name)))
    loader = PointCloudLoader(path, split=empty)
    b = loader._source.sample()
    assert b["points"].shape[0] == 0 and b["index"].dtype == torch.int64 and len(list(loader)) == 0


def test_repr_names_the_stream(jet_store):
    loader = PointCloudLoader(jet_store, split="val", batch_size=64, rank=1, world_size=2)
    assert repr(loader) == (f"<PointCloudLoader {str(jet_store.path)!r} split=val clouds={loader.num_clouds} "
                            "batch_size=64 rank=1/2 workers=0 epoch=0>")


def test_the_first_two_batches_are_read_as_a_round_of_their_own(jet_store):
    """The first batch waits for its own clouds' chunks only: batches 0-1 of an iteration are one
    round, then whole rounds (``round_batches`` of the readers sharing the stream) follow."""
    loader = PointCloudLoader(jet_store, split=None, batch_size=16, seed=1,
                              shuffle_options=ShuffleOptions(buffer_size=32, lanes=2))
    source, plan = loader._source, loader.plan()
    per = plan.round_batches(1)
    ids = np.arange(plan.num_batches)
    assert plan.num_batches > per  # two rounds at least
    groups = [g.tolist() for g in source._rounds(plan, ids, 1)]
    assert groups[:3] == [[0, 1], list(range(2, per)), list(range(per, min(2 * per, plan.num_batches)))]
    assert sum(groups, []) == ids.tolist()
    many = plan.round_batches(40)  # 40 readers: a round long enough for 16 batches each
    assert many > plan.num_batches and [g.tolist() for g in source._rounds(plan, ids, 40)] == [[0, 1], ids[2:].tolist()]
    resumed = ids[per - 1 :]  # a resume one batch before a round ends: that batch, then whole rounds
    assert [g.tolist() for g in source._rounds(plan, resumed, 1)][:2] == [[per - 1], list(range(per, 2 * per))]
    assert [g.tolist() for g in source._rounds(plan, ids[:2], 1)] == [[0, 1]]
    assert list(source._rounds(plan, ids[:0], 1)) == []


def test_dequantisation_noise_is_named_by_seed_epoch_and_batch(shower_store):
    """Batch k of epoch e draws its noise from a generator seeded with hash_seed(seed, e, k, 4): the
    stream is fixed by its definition, and two batches, epochs or seeds never share noise."""
    from pcdata.loaders.order import hash_seed
    from pcdata.loaders.transforms import Dequantize

    kw = dict(split=None, batch_size=20, pad=400, shuffle=False)
    noisy = PointCloudLoader(shower_store, seed=3, transforms=[Dequantize(["layer", "alpha", "r"])], **kw)
    raw = PointCloudLoader(shower_store, seed=3, **kw)
    noise = {}
    for epoch in (0, 1):
        noisy.set_epoch(epoch)
        raw.set_epoch(epoch)
        for k, (got, plain) in enumerate(zip(noisy, raw)):
            gen = torch.Generator().manual_seed(hash_seed(3, epoch, k, 4) & ((1 << 63) - 1))
            want = noisy.transforms.forward(dict(plain), gen)
            np.testing.assert_array_equal(got["points"].numpy(), want["points"].numpy())
            if k < 2:
                noise[epoch, k] = (got["points"] - plain["points"])[..., :3].numpy()
    other = next(iter(PointCloudLoader(shower_store, seed=4, transforms=[Dequantize(["layer", "alpha", "r"])], **kw)))
    noise["seed", 0] = (other["points"] - next(iter(PointCloudLoader(shower_store, seed=4, **kw)))["points"])[..., :3].numpy()
    firsts = [noise[0, 0], noise[0, 1], noise[1, 0], noise["seed", 0]]
    for i in range(len(firsts)):
        for j in range(i + 1, len(firsts)):
            assert not np.array_equal(firsts[i], firsts[j]), (i, j)


def test_drop_last_counts_the_batches_of_every_rank(jet_store):
    b = 63
    assert (jet_store.num_clouds // b) % 2 == 1  # an odd number of full batches: one is dropped
    loaders = [PointCloudLoader(jet_store, split=None, batch_size=b, drop_last=True, rank=r, world_size=2) for r in range(2)]
    assert loaders[0].plan().num_batches == jet_store.num_clouds // b - 1
    assert [len(list(x)) for x in loaders] == [len(loaders[0])] * 2 == [(jet_store.num_clouds // b) // 2] * 2


def test_the_default_block_is_four_points_chunks_at_the_mean_multiplicity(jet_store):
    from pcdata.loaders.order import fragment_blocks

    loader = PointCloudLoader(jet_store, split=None)
    block = round(4 * 1500 * jet_store.num_clouds / jet_store.num_points)  # points chunks of 1500 rows
    np.testing.assert_array_equal(loader.plan().layout.blocks, fragment_blocks(jet_store.fragment_starts, block))
    chosen = PointCloudLoader(jet_store, split=None, shuffle_options=ShuffleOptions(block_clouds=37))
    np.testing.assert_array_equal(chosen.plan().layout.blocks, fragment_blocks(jet_store.fragment_starts, 37))
    assert PointCloudLoader(jet_store, split=None, bucket=8).plan().bucket == 8
    assert PointCloudLoader(jet_store, split=None, bucket=8, shuffle_options=ShuffleOptions(lanes=3)).plan().lanes == 3


def test_a_stream_sent_to_a_spawned_worker_opens_the_store_itself(tmp_path, jets):
    """What a spawned worker gets is the pickled stream without the source: it reopens the store by
    path, with the same options (an interrupted store included) and yields the same batches."""
    import pickle

    from pcdata import open_store
    from pcdata.loaders.loader import _Stream
    from pcdata.store import prepare_store
    from tests.loaders.conftest import CHUNKS, jets_meta

    from dataclasses import replace

    b = prepare_store(tmp_path / "s", replace(jets_meta(), expected_fragments=3, layout=CHUNKS))
    b.commit(b.writer().write("f000000000", jets.slice(0, 1100)))
    b.close()
    store = open_store(tmp_path / "s", allow_incomplete=True)
    loader = PointCloudLoader(store, split=None, batch_size=64, seed=2, features=["pt_rel"], fields=["n"])
    stream = _Stream(loader._spec, 0, 3, loader._source)
    sent = pickle.loads(pickle.dumps(stream))
    assert sent.source is None and stream.source is loader._source
    want = list(iter(stream))
    got = list(sent.iter_share(0, 1))
    assert len(got) == len(want) == len(loader) - 3
    for a, c in zip(got, want):
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), c[key].numpy())
    assert [b["points"].shape[2] for b in got[:1]] == [1]


def test_padding_is_checked_and_numpy_integers_are_numbers(jet_store):
    for bad in (0, -3, True, 2.5, "longest"):
        with pytest.raises(ValueError, match=rf"^pad must be 'batch' or a number of points >= 1, got {bad!r}$"):
            PointCloudLoader(jet_store, split=None, pad=bad)
    loader = PointCloudLoader(jet_store, split=None, batch_size=10, pad=np.int64(7))
    assert next(iter(loader))["points"].shape == (10, 7, 3)
    one = PointCloudLoader(jet_store, split=None, batch_size=10, pad=1)
    assert next(iter(one))["points"].shape[1] == 1


def test_constructor_checks_name_the_option(jet_store):
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        PointCloudLoader(jet_store, batch_size=0)
    with pytest.raises(ValueError, match=r"^num_workers must be >= 0, got -1$"):
        PointCloudLoader(jet_store, num_workers=-1)
    with pytest.raises(KeyError, match=rf"{jet_store.path}: no point feature 'mass' \(has eta_rel, phi_rel, pt_rel\)"):
        PointCloudLoader(jet_store, features=["eta_rel", "mass"])
    with pytest.raises(KeyError, match=rf"{jet_store.path}: no cloud field 'charge' \(has pt, eta, n\)"):
        PointCloudLoader(jet_store, fields=["pt", "charge"])
    one = PointCloudLoader(jet_store, batch_size=1, num_workers=0)
    assert one.batch_size == 1 and one.num_workers == 0 and one.cloud_features == ("pt", "eta", "n")
    assert one.point_features == ("eta_rel", "phi_rel", "pt_rel") and (one.rank, one.world_size) == (0, 1)


def test_each_reading_path_is_the_one_the_store_and_options_call_for(tmp_path, jets):
    """Raw chunks are gathered from the page cache (no decoding ring), unless a subset of features
    is loaded (then the mapped rows would carry every column) or the cache is asked for."""
    from pcdata import open_store
    from pcdata.store import ChunkSpec, write_store
    from tests.loaders.conftest import jets_meta

    write_store(tmp_path / "raw", jets.slice(0, 600), jets_meta(), clouds_per_fragment=250,
                chunks=ChunkSpec(points_rows=1024, clouds=500, cname="none"))
    raw = open_store(tmp_path / "raw")
    kw = dict(split=None, batch_size=50, seed=1)
    mapped = PointCloudLoader(raw, **kw)
    reference = collect(mapped)
    assert mapped._source._mapped is not None and mapped._source._ring is None  # never decoded
    cached = PointCloudLoader(raw, cache=True, **kw)
    assert [np.array_equal(a, b) for a, b in zip(collect(cached)["points"], reference["points"])] == [True] * 12
    assert cached._source._mapped is False and cached._source._rows is not None  # the cache, not the mapping
    subset = PointCloudLoader(raw, features=["pt_rel", "eta_rel"], **kw)
    got = collect(subset)
    assert subset._source.mapped_rows() is None and subset._source._ring is not None
    for batch_points, index in zip(got["points"], got["index"]):
        ref = raw.take(index).padded()
        np.testing.assert_array_equal(batch_points, ref.points[..., [2, 0]])
