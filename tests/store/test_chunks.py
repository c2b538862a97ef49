"""Direct chunk decoding against zarr's own reading of the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec

from pcdata import Clouds, open_store
from pcdata.errors import StoreFormatError
from pcdata.store import ChunkSpec, Feature, StoreMeta, write_store
from pcdata.store.chunks import open_chunks
from tests.store.conftest import make_clouds, shard, shard_entries


def _array(tmp_path, data, chunk_rows, **kw):
    kw.setdefault("compressors", BloscCodec(cname="lz4", shuffle="shuffle"))  # the writer's codec
    path = tmp_path / "a"
    arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype,
                            chunks=(chunk_rows, *data.shape[1:]), **kw)
    arr[:] = data
    return path, arr


@pytest.mark.parametrize("compressors", [BloscCodec(cname="lz4", shuffle="shuffle"), BloscCodec(cname="zstd", shuffle="bitshuffle"), None])
def test_any_row_range_equals_zarr(tmp_path, compressors):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1003, 4)).astype(np.float32)  # a partial last chunk
    path, arr = _array(tmp_path, data, 100, compressors=compressors)
    chunks = open_chunks(path)
    assert chunks is not None and chunks.rows == 100 and chunks.compressed == (compressors is not None)
    for a, b in [(0, 1003), (0, 100), (100, 200), (5, 7), (99, 101), (950, 2000), (37, 812), (500, 500)]:
        np.testing.assert_array_equal(chunks.read(a, b), data[a:b])
    out = np.full((300, 4), np.nan, dtype=np.float32)
    assert chunks.read(250, 550, out) is out
    np.testing.assert_array_equal(out, data[250:550])
    with pytest.raises(ValueError, match="C-contiguous"):
        chunks.read(0, 10, np.zeros((9, 4), np.float32))


def test_one_dimensional_and_integer_arrays(tmp_path):
    data = np.arange(777, dtype=np.int64) * 3
    path, _ = _array(tmp_path, data, 64)
    chunks = open_chunks(path)
    np.testing.assert_array_equal(chunks.read(60, 700), data[60:700])


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    data = np.ones((400, 3), np.float32)
    data[100:200] = 0.0  # zarr does not write a chunk equal to the fill value
    path, _ = _array(tmp_path, data, 100)
    assert not (path / "c" / "1" / "0").exists() and (path / "c" / "2" / "0").exists()
    np.testing.assert_array_equal(open_chunks(path).read(50, 350), data[50:350])


def test_other_layouts_are_left_to_zarr(tmp_path):
    data = np.arange(1200, dtype=np.float32).reshape(400, 3)
    gz, _ = _array(tmp_path / "gzip", data, 100, compressors=GzipCodec())
    sharded, _ = _array(tmp_path / "sharded", data, 50, shards=(200, 3))
    plain, _ = _array(tmp_path / "plain", data, 100)
    zarr.create_array(str(tmp_path / "cols"), shape=data.shape, dtype=data.dtype, chunks=(100, 1),
                      compressors=BloscCodec(cname="lz4"))[:] = data
    assert open_chunks(gz) is None and open_chunks(sharded) is None and open_chunks(tmp_path / "cols") is None
    assert open_chunks(plain) is not None
    assert open_chunks(tmp_path / "nothing-here") is None


def _store(tmp_path, points_rows=700, **chunk_kw):
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 40, 500)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    clouds = Clouds(rng.normal(size=(off[-1], 3)).astype(np.float32), off, {"pt": rng.normal(size=500).astype(np.float32)},
                    ("a", "b", "c"))
    meta = StoreMeta(kind="jets", coords="test", point_features=tuple(Feature(f) for f in "abc"),
                     cloud_features=(Feature("pt"),), fingerprint="chunks-test")
    write_store(tmp_path / "s", clouds, meta, clouds_per_fragment=200, chunks=ChunkSpec(points_rows=points_rows, **chunk_kw))
    return open_store(tmp_path / "s"), clouds


@pytest.mark.parametrize("cname", ["lz4", "none"])
def test_store_reads_across_fragments_into_a_buffer(tmp_path, cname):
    store, clouds = _store(tmp_path, cname=cname)
    chunks = store._fragment(0)._points_chunks
    assert chunks is not None and chunks.compressed == (cname != "none")  # the writer's layouts take the direct path
    out = np.zeros((5000, 3), np.float32)
    a = int(clouds.offsets[150])
    got = store.read_points(a, a + 5000, out)  # spans the first fragment boundary (cloud 200)
    assert got is out
    np.testing.assert_array_equal(out, clouds.points[a : a + 5000])
    np.testing.assert_array_equal(store.read_points(0, store.num_points), clouds.points)
    with pytest.raises(ValueError, match="float32"):
        store.read_points(0, 10, np.zeros((10, 3), np.float64))


def test_a_damaged_shard_names_its_file_and_fragment(tmp_path):
    store, clouds = _store(tmp_path)
    path = shard(tmp_path / "s", 1)
    good = path.read_bytes()
    (offset, nbytes), _ = shard_entries(path)[:2]
    path.write_bytes(good[:offset] + b"not blosc at all, but long enough".ljust(nbytes, b"!") + good[offset + nbytes :])
    with pytest.raises(StoreFormatError, match=f"fragment {store.fragments[1].id}: damaged Blosc chunk 0"):
        open_store(tmp_path / "s").read_points(0, store.num_points)
    path.write_bytes(good[:-1])
    with pytest.raises(StoreFormatError, match=f"fragment {store.fragments[1].id}: damaged chunk file: its index fails the crc32c check \\({path}\\)"):
        open_store(tmp_path / "s").read_points(0, store.num_points)
    path.write_bytes(b"x" + good)  # one byte too many: the chunks no longer end where the index says
    with pytest.raises(StoreFormatError, match="where the index ends its chunks"):
        open_store(tmp_path / "s").read_points(0, store.num_points)
    path.unlink()
    with pytest.raises(StoreFormatError, match=f"fragment {store.fragments[1].id}: missing chunk file \\({path}\\)"):
        open_store(tmp_path / "s").read_points(0, store.num_points)
    np.testing.assert_array_equal(open_store(tmp_path / "s").read_points(0, 100), clouds.points[:100])  # fragment 0 is fine


def test_a_format_1_fragment_in_another_layout_is_read_through_zarr(tmp_path, store_v1):
    frag = store_v1 / "fragments" / "f000000"
    points = np.asarray(zarr.open_array(str(frag), path="points", mode="r")[:])
    zarr.create_array(str(frag / "points"), shape=points.shape, dtype="float32", chunks=(300, 3),
                      compressors=GzipCodec(), overwrite=True)[:] = points
    reopened = open_store(store_v1)
    assert reopened._fragment(0)._points_chunks is None and reopened._fragment(1)._points_chunks is not None
    np.testing.assert_array_equal(reopened.read_points(0, reopened.num_points), make_clouds(300, seed=3).points)
    assert reopened.take([0, 299]).equals(make_clouds(300, seed=3).take([0, 299]))
    out = np.full((reopened.num_points, 3), np.nan, np.float32)  # both ways of reading fill a given buffer
    assert reopened.read_points(0, reopened.num_points, out) is out
    np.testing.assert_array_equal(out, make_clouds(300, seed=3).points)
    assert reopened.map_points() is None  # a fragment not in raw chunk files: nothing to map


def _first_rows(store, shift):
    # The mapped row of each cloud: its global point row plus its fragment's shift.
    starts, _ = store.point_ranges(np.arange(store.num_clouds))
    fragment = np.searchsorted(store.fragment_starts, np.arange(store.num_clouds), side="right") - 1
    return starts + shift[fragment]


def test_raw_chunks_map_to_the_store_rows_of_every_cloud(tmp_path):
    # Mapped chunks must be whole pages: 1024 rows of 3 floats are 3 pages (the default 65536 rows
    # are whole pages at any width); 700 rows are not, and those stores are read instead.
    assert _store(tmp_path / "odd", cname="none")[0].map_points() is None
    store, clouds = _store(tmp_path, points_rows=1024, cname="none")
    rows, shift, mapping = store.map_points()
    first_row = _first_rows(store, shift)
    assert not rows.flags.writeable and len(store.fragments) > 1
    for i in (0, 199, 200, 201, len(clouds) - 1):  # around a fragment boundary (cloud 200)
        a, b = clouds.offsets[i], clouds.offsets[i + 1]
        np.testing.assert_array_equal(rows[first_row[i] : first_row[i] + b - a], clouds.points[a:b])
    every = np.concatenate([rows[f : f + c] for f, c in zip(first_row, clouds.counts)])
    np.testing.assert_array_equal(every, clouds.points)
    mapping.close()
    assert _store(tmp_path / "lz4", points_rows=1024)[0].map_points() is None  # compressed: decoded instead


def test_a_missing_or_short_raw_shard_is_refused_when_mapping(tmp_path):
    store, clouds = _store(tmp_path, points_rows=1024, cname="none")
    path = shard(tmp_path / "s", 1)
    good = path.read_bytes()
    path.write_bytes(good[:1024 * 12] + good[-(16 * len(shard_entries(path)) + 4) :])  # a chunk cut short
    with pytest.raises(StoreFormatError, match=f"fragment {store.fragments[1].id}: damaged chunk file"):
        open_store(tmp_path / "s").map_points()
    path.unlink()
    with pytest.raises(StoreFormatError, match=f"fragment {store.fragments[1].id}: missing chunk file"):
        open_store(tmp_path / "s").map_points()


def test_mapped_rows_outlive_the_mapping_object_and_close_ends_them(tmp_path):
    import gc

    store, clouds = _store(tmp_path, points_rows=1024, cname="none")
    rows, shift, mapping = store.map_points()
    first_row = _first_rows(store, shift)
    view = rows[first_row[3] :]
    del rows, mapping
    gc.collect()
    np.testing.assert_array_equal(view[: clouds.counts[3]], clouds.points[clouds.offsets[3] : clouds.offsets[4]])
    mapped = store.map_points()[2]
    mapped.close()
    mapped.close()  # a second close does nothing
