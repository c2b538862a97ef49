"""A store of 10^5 fragments written by a real ingest: small root, fan-out, reads that touch only
what they need."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from pcdata.ingest.jetnet import jetnet_template
from pcdata.ingest import IngestOptions
from pcdata.ingest.pipeline import run_ingest
from pcdata.sources.jetnet import JetNetSource
from pcdata.store import open_store
from pcdata.store.writer import JET_CHUNKS
from tests.helpers import make_jetnet_file

N = 100_000


@pytest.mark.slow
@pytest.mark.distributed
def test_a_store_of_100k_fragments_opens_from_its_root_and_reads_what_it_needs(tmp_path, scheduler, monkeypatch):
    source = JetNetSource.open([make_jetnet_file(tmp_path / "t.hdf5", N, 30, seed=3)])
    out = tmp_path / "s"
    # One jet per fragment; data left to the page cache (fsync=False), commits fsynced as always.
    run_ingest(source, out, jetnet_template(30), identity={}, cluster=scheduler,
               options=IngestOptions(rows_per_fragment=1, chunks=JET_CHUNKS, progress=False, fsync=False))

    root = json.loads((out / "zarr.json").read_text())["attributes"]["pcdata"]
    assert (root["status"], root["num_fragments"], root["num_clouds"]) == ("complete", N, N)
    assert (out / "zarr.json").stat().st_size < 8192  # the root does not grow with the fragments
    parts = root["manifests"]["index"]
    assert len(parts) == 25 and sum(p["fragments"] for p in parts) == N
    manifests = sorted(p.name for p in (out / "manifests" / root["generation"]).iterdir())
    assert manifests == [f"index-{i:08d}.json" for i in range(25)]  # the commit logs are gone
    fans = sorted((out / "fragments" / root["generation"]).iterdir())
    assert len(fans) == 101 and max(len(list(d.iterdir())) for d in fans if d.is_dir()) == 1001  # 1,000 + zarr.json
    assert len(list(fans[0].glob("f*/**/*"))) == 1000 * 24  # 25 entries a fragment with its directory

    read = []
    monkeypatch.setattr("pcdata.store.reader.read_index_part", lambda *a, _real=__import__(
        "pcdata.store.metadata", fromlist=["read_index_part"]).read_index_part: read.append(a[2].path) or _real(*a))
    t = time.perf_counter()
    store = open_store(out)
    opened = time.perf_counter() - t
    assert read == [] and store.num_clouds == N and opened < 0.5  # the root alone (measured: about a millisecond)
    picks = np.sort(np.random.default_rng(0).choice(N, 200, replace=False))
    got = store.take(picks)
    assert len(read) == len({int(i) // 4096 for i in picks}) <= 25  # one index manifest per 4,096 fragments touched
    expected = source.read(0, 0, N).take(picks)
    assert got.equals(expected)
    assert store.take([N - 1]).equals(source.read(0, N - 1, N))

    # The loader plans per fragment: its first batch (train split, shuffled) reads the offsets and
    # fields of the fragments its first batches draw from, not of every fragment (the points of
    # raw stores are mapped, fragment by fragment, without reading them).
    from pcdata.loaders import PointCloudLoader
    from pcdata.store.shards import ShardFile

    touched, real_read = set(), ShardFile.read_whole
    monkeypatch.setattr(ShardFile, "read_whole", lambda self: touched.add(re.search(r"/(f\d+)/", self.path)[1])
                        or real_read(self))
    loader = PointCloudLoader(open_store(out), split="train", batch_size=64, pad=30, seed=5)
    batch = next(iter(loader))
    ids = batch["index"].numpy()
    assert len(ids) == 64 and len(np.unique(ids)) == 64
    assert loader.num_clouds == len(open_store(out).split_indices("train"))
    assert np.all(open_store(out).in_split(ids, "train"))
    assert 64 <= len(touched) <= 2 * 64  # the first round: two batches
    clouds = source.read(0, 0, N).take(ids)
    for j in range(64):
        k = int(batch["mask"][j].sum())
        np.testing.assert_array_equal(batch["points"][j, :k].numpy(), clouds.points[clouds.offsets[j] : clouds.offsets[j + 1]])
