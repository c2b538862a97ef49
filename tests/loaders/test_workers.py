"""Worker processes handing batches over through shared-memory slots (real processes)."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch

from pcdata.errors import StoreFormatError
from pcdata.loaders import PointCloudLoader
from pcdata.loaders.workers import WorkerPool


class Counting:
    """A stream whose worker ``w`` of ``n`` yields batches ``w, w + n, ...`` of a known content."""

    def __init__(self, batches: int, fail_at: int | None = None):
        self.batches, self.fail_at = batches, fail_at

    def iter_share(self, worker: int, num_workers: int):
        for k in range(worker, self.batches, num_workers):
            if k == self.fail_at:
                raise KeyError(f"batch {k} is broken")
            yield {"points": torch.full((k + 1, 3), float(k)), "mask": torch.arange(k + 1) % 2 == 0,
                   "index": torch.tensor([k], dtype=torch.int64)}


def _check(batches):
    for k, b in enumerate(batches):
        assert b["index"].tolist() == [k]
        assert b["points"].shape == (k + 1, 3) and (b["points"] == k).all()
        assert b["mask"].tolist() == [i % 2 == 0 for i in range(k + 1)]


@pytest.mark.parametrize("slot_bytes", [4096, 64])  # 64: every batch too big, sent whole
def test_batches_come_in_round_robin_order_whole_or_through_slots(slot_bytes):
    batches = list(WorkerPool(Counting(13), 3, slot_bytes, slots=2))
    assert len(batches) == 13
    _check(batches)


def test_a_worker_error_is_raised_in_the_main_process():
    with pytest.raises(KeyError, match="batch 5 is broken"):
        list(WorkerPool(Counting(20, fail_at=5), 2, 4096))


def test_stopping_early_ends_the_workers():
    it = iter(WorkerPool(Counting(1000), 2, 4096, slots=2))
    _check([next(it) for _ in range(3)])
    it.close()
    assert not [p for p in mp.active_children() if p.name.startswith("pcdata-loader")]  # (a Dask cluster may run beside)


def test_a_store_error_in_a_worker_reaches_the_caller(tmp_path, jets):
    from pcdata.store import write_store

    from .conftest import CHUNKS, jets_meta

    from tests.store.conftest import shard, shard_entries

    write_store(tmp_path / "s", jets, jets_meta(), clouds_per_fragment=1100, chunks=CHUNKS)
    path = shard(tmp_path / "s", 0)
    data = path.read_bytes()
    offset, nbytes = shard_entries(path)[1]
    path.write_bytes(data[:offset] + b"g" * nbytes + data[offset + nbytes :])
    with pytest.raises(StoreFormatError, match="fragment f000000000: damaged Blosc chunk 1"):
        list(PointCloudLoader(tmp_path / "s", split=None, num_workers=2, batch_size=64))
    path.unlink()  # a shard gone: never zeros, in a worker or in this process
    for workers in (2, 0):
        with pytest.raises(StoreFormatError, match=f"fragment f000000000: missing chunk file \\({path}\\)"):
            list(PointCloudLoader(tmp_path / "s", split=None, num_workers=workers, batch_size=64))


@pytest.mark.slow
def test_spawned_workers_give_the_in_process_stream(jet_store):
    from pcdata.loaders import WorkerOptions

    kw = dict(split="train", batch_size=100, seed=9, pad="batch")
    reference = [b["index"].numpy() for b in PointCloudLoader(jet_store, **kw)]
    spawned = PointCloudLoader(jet_store, num_workers=2, worker_options=WorkerOptions(start_method="spawn"), **kw)
    got = list(spawned)
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        np.testing.assert_array_equal(a["index"].numpy(), b)
        assert a["points"].shape[1] == a["counts"].max()
