"""Tests of pcdata.store.remote: a store read over HTTP (a real server on 127.0.0.1 answering
Range requests) reads what the local store reads, fetches only what a request needs, and every
way the server fails is one error naming the URL."""

from __future__ import annotations

import shutil
import socket
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

from pcdata.errors import NotAStoreError, RemoteStoreError, StoreFormatError, StoreIncompleteError, StoreNotFoundError
from pcdata.loaders import PointCloudLoader
from pcdata.store import ChunkSpec, open_store, write_store
from tests.conftest import run_cli
from tests.helpers import serve_http
from tests.range_server import serve_dir
from tests.store.conftest import fragment_dirs, make_clouds, shard, template

CHUNKS = {"raw": ChunkSpec(points_rows=512, clouds=256, cname="none"),
          "lz4": ChunkSpec(points_rows=512, clouds=256, cname="lz4")}


@pytest.fixture(scope="module", params=sorted(CHUNKS))
def served(request, tmp_path_factory):
    """(local store path, its URL) for raw and Blosc-compressed chunks."""
    root = tmp_path_factory.mktemp("www")
    write_store(root / "s.zarr", make_clouds(3000, seed=5), template(), clouds_per_fragment=700,
                chunks=CHUNKS[request.param])
    with serve_dir(root) as server:
        yield root / "s.zarr", f"{server.url}/s.zarr", server


def _same(a, b) -> None:
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    assert a.fields.keys() == b.fields.keys()
    for k in a.fields:
        assert np.array_equal(a.fields[k], b.fields[k])


def test_reads_over_http_equal_the_local_reads(served):
    path, url, _ = served
    local, remote = open_store(path), open_store(url)
    assert remote.path == url and remote.num_clouds == local.num_clouds == 3000
    rng = np.random.default_rng(0)
    idx = rng.choice(3000, size=400, replace=False)  # unsorted, across every fragment
    _same(remote.take(idx), local.take(idx))
    _same(remote.split("val"), local.split("val"))
    _same(remote[650:1450], local[650:1450])  # a range across fragment and chunk edges
    assert np.array_equal(remote.read_points(100, 30000), local.read_points(100, 30000))
    assert np.array_equal(remote.offsets, local.offsets) and np.array_equal(remote.field("pt"), local.field("pt"))
    assert remote.verify() == []
    assert remote.map_points() is None  # nothing to map from a server


def test_every_row_range_reads_as_on_disk(served):
    """Ranges starting and ending on, just before and just after chunk edges (512 rows), inside one
    chunk and across several: the ranged request and the cut into rows are exact."""
    path, url, _ = served
    local, remote = open_store(path), open_store(url)
    cases = [(a, b) for a in (0, 1, 100, 511, 512, 513, 1000) for b in (2, 300, 511, 512, 513, 1023, 1024, 1025, 2049, 5000)
             if b > a]
    for a, b in cases:
        assert np.array_equal(remote.read_points(a, b), local.read_points(a, b)), (a, b)


def test_a_few_clouds_fetch_a_small_part_of_the_store(served):
    path, url, server = served
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    store = open_store(url)
    server.reset()
    got = store.take([1500, 1501])
    with server.lock:
        fetched = sum(server.sent.values())
    assert len(got) == 2
    # The root, one index manifest, the fragment's offsets and fields, its points index and one chunk.
    assert fetched < total / 10, (fetched, total)


def test_the_loader_streams_the_same_batches_over_http(served):
    path, url, _ = served
    for workers in (0, 2):
        kw = dict(split="train", batch_size=128, seed=3, num_workers=workers)
        a = list(PointCloudLoader(url, **kw))
        b = list(PointCloudLoader(path, **kw))
        assert len(a) == len(b) > 10
        for x, y in zip(a, b):
            assert x.keys() == y.keys()
            assert all(np.array_equal(x[k].numpy(), y[k].numpy()) for k in x)


class _Failing(BaseHTTPRequestHandler):
    """A server that answers every request with 503 (overloaded, or its storage is down)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


def test_server_failures_are_one_error_naming_the_url(served, tmp_path):
    path, url, _ = served
    base = url.rsplit("/", 1)[0]
    with pytest.raises(StoreNotFoundError, match=rf"^{base}/nothing\.zarr: no such store"):
        open_store(f"{base}/nothing.zarr")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteStoreError, match=rf"^http://127\.0\.0\.1:{port}/s\.zarr/zarr\.json: cannot reach the server"):
        open_store(f"http://127.0.0.1:{port}/s.zarr")

    with serve_http(_Failing) as failing:
        with pytest.raises(RemoteStoreError, match=rf"^{failing}/s\.zarr/zarr\.json: the server answered HTTP 503$"):
            open_store(f"{failing}/s.zarr")

    # A server that ignores Range sends whole files: refused where a range is asked, not misread.
    with serve_dir(path.parent, ranges=False) as server:
        store = open_store(f"{server.url}/s.zarr")
        with pytest.raises(RemoteStoreError, match="does not answer HTTP Range requests"):
            store.take([0])


def test_missing_or_cut_files_on_the_server_are_errors(tmp_path):
    root = tmp_path / "www"
    write_store(root / "s.zarr", make_clouds(1500, seed=1), template(), clouds_per_fragment=700,
                chunks=CHUNKS["lz4"])
    (root / "plain").mkdir()
    (root / "plain" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    points = shard(root / "s.zarr", 1)
    data = points.read_bytes()
    with serve_dir(root) as server:
        with pytest.raises(NotAStoreError, match="not a pcdata store"):
            open_store(f"{server.url}/plain")
        store = open_store(f"{server.url}/s.zarr")
        points.write_bytes(data[:-100])  # cut: the index is no longer at the end
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: damaged chunk file: its index fails the crc32c"):
            store.take(np.arange(800, 820))
        points.write_bytes(data[:10])
        store = open_store(f"{server.url}/s.zarr")
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: damaged chunk file: 10 bytes, shorter than its index"):
            store.take(np.arange(800, 820))
        points.unlink()
        store = open_store(f"{server.url}/s.zarr")
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: missing chunk file \(http://.*/points/c\.0\.0\)"):
            store.take(np.arange(800, 820))
        assert store.take([5]).num_points == open_store(root / "s.zarr").take([5]).num_points  # fragment 0 is fine
        shutil.rmtree(fragment_dirs(root / "s.zarr")[0])
        with pytest.raises(StoreFormatError, match="fragment f0+0: missing chunk file"):
            open_store(f"{server.url}/s.zarr").take([5])


def test_a_shard_that_changes_under_a_reader_is_an_error_naming_the_chunk(tmp_path):
    """The reader keeps each shard's index once read; a shard cut, removed or damaged on the server
    afterwards is reported, never read as other bytes."""
    from tests.store.conftest import shard_entries

    root = tmp_path / "www"
    write_store(root / "s.zarr", make_clouds(1500, seed=1), template(), clouds_per_fragment=700,
                chunks=CHUNKS["lz4"])
    points = shard(root / "s.zarr", 1)
    data, entries = points.read_bytes(), shard_entries(points)
    local = open_store(root / "s.zarr")
    first = int(local.point_starts[1])  # fragment 1's first point row
    with serve_dir(root) as server:
        store = open_store(f"{server.url}/s.zarr")
        assert np.array_equal(store.read_points(first, first + 10), local.read_points(first, first + 10))
        # chunk 3's Blosc header says it decodes to one byte fewer
        bad = bytearray(data)
        at = entries[3][0] + 4
        bad[at : at + 4] = (int.from_bytes(data[at : at + 4], "little") - 1).to_bytes(4, "little")
        points.write_bytes(bytes(bad))
        for a, b in ((3 * 512, 4 * 512), (3 * 512 + 5, 3 * 512 + 9)):  # the whole chunk, and a part of it
            with pytest.raises(StoreFormatError, match=r"fragment f0+1: damaged Blosc chunk 3 \(decodes to"):
                store.read_points(first + a, first + b)
        points.write_bytes(data[: entries[5][0] + 10])  # cut inside chunk 5
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: damaged chunk file: chunks 4-5 cut short"):
            store.read_points(first + 4 * 512, first + 6 * 512)
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: damaged chunk file: chunks 7-7 cut short"):
            store.read_points(first + 7 * 512, first + 7 * 512 + 1)  # wholly past the end: HTTP 416
        points.unlink()
        with pytest.raises(StoreFormatError, match=r"fragment f0+1: missing chunk file \(http://\S+/points/c\.0\.0\)$"):
            store.read_points(first, first + 10)


def test_a_format_1_store_is_refused_over_http(store_v1):
    with serve_dir(store_v1.parent) as server:
        message = (rf"^{server.url}/{store_v1.name}: a format 1 store is read from a local path only; "
                   r"`pcdata migrate` makes it format 2, which is read over HTTP too$")
        with pytest.raises(StoreFormatError, match=message):
            open_store(f"{server.url}/{store_v1.name}")


def test_an_interrupted_ingest_over_http_and_a_url_ending_in_a_slash(tmp_path):
    """Refused as on disk, opened with ``allow_incomplete``; a trailing slash names the same store
    (here one whose name ends in an X: only slashes are cut)."""
    from pcdata.store import prepare_store

    c = make_clouds(100, seed=2)
    t = template().__class__(**{**template().__dict__, "expected_fragments": 2})
    b = prepare_store(tmp_path / "www" / "run-X", t)
    b.commit(b.writer().write("f000000000", c.slice(0, 60)))
    with serve_dir(tmp_path / "www") as server:
        url = f"{server.url}/run-X"
        message = (rf"^{url}: incomplete store, 1 of 2 fragments committed \(an ingest was interrupted\); "
                   r"re-run the same ingest command to finish it$")
        with pytest.raises(StoreIncompleteError, match=message):
            open_store(url + "/")
        store = open_store(url + "/", allow_incomplete=True)
        assert store.path == url and not store.complete and store.read().equals(c.slice(0, 60))


def test_inspect_verify_and_export_read_a_store_over_http(served, tmp_path):
    import json

    import pyarrow.parquet as pq

    path, url, _ = served
    proc = run_cli("pcdata", "inspect", url, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["num_clouds"] == 3000 and doc["path"] == url
    proc = run_cli("pcdata", "verify", url)
    assert proc.returncode == 0 and f"ok {url}: 5 fragments" in proc.stdout, proc.stderr
    for source, name in ((url, "remote.parquet"), (str(path), "local.parquet")):
        proc = run_cli("pcdata", "export", source, "--format", "parquet", "--split", "test", "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "remote.parquet").equals(pq.read_table(tmp_path / "local.parquet"))
    proc = run_cli("pcdata", "inspect", url.rsplit("/", 1)[0] + "/none.zarr")
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "no such store" in proc.stderr
