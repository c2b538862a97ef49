"""Shard files read whole: the same values as a row-range read, the same errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pcdata.errors import StoreFormatError
from pcdata.store import ChunkSpec
from pcdata.store.shards import ShardFile, shard_key, write_array


def _write(tmp_path, values, rows, cname):
    path = tmp_path / f"a-{cname}-{rows}-{values.ndim}"
    write_array(path, values, rows, ChunkSpec(cname=cname), tuple(f"d{i}" for i in range(values.ndim)), {}, fsync=False)
    return ShardFile(path, values.shape, values.dtype, rows, cname != "none", "fragment f0")


@pytest.mark.parametrize("cname", ["none", "lz4"])
@pytest.mark.parametrize("shape,rows", [((1003, 3), 100), ((1003,), 64), ((5,), 5000), ((1, 4), 1), ((4096, 3), 1024)])
def test_a_whole_read_equals_the_values_and_a_range_read(tmp_path, cname, shape, rows):
    rng = np.random.default_rng(sum(shape))
    values = rng.normal(size=shape).astype(np.float32) if len(shape) > 1 else rng.integers(0, 10**12, shape)
    whole = _write(tmp_path, values, rows, cname).read_whole()
    np.testing.assert_array_equal(whole, values)
    assert whole.dtype == values.dtype and whole.flags.c_contiguous
    again = _write(tmp_path / "b", values, rows, cname)
    np.testing.assert_array_equal(again.read(), values)
    np.testing.assert_array_equal(again.read_whole(), values)  # after the index is known: the range path


def test_an_empty_array_reads_without_a_file(tmp_path):
    assert _write(tmp_path, np.zeros(0, np.int64), 64, "lz4").read_whole().shape == (0,)


@pytest.mark.parametrize("cname", ["none", "lz4"])
def test_a_damaged_or_missing_shard_read_whole_is_an_error_naming_it(tmp_path, cname):
    values = np.arange(1000, dtype=np.int64)
    sf = _write(tmp_path, values, 100, cname)
    path = sf.path + "/" + shard_key(1)
    good = open(path, "rb").read()
    open(path, "wb").write(good[:10] + good[-164:])  # chunks cut away, index kept
    with pytest.raises(StoreFormatError, match=r"fragment f0: damaged chunk file: .* bytes where the index ends"):
        ShardFile(sf.path, values.shape, values.dtype, 100, cname != "none", "fragment f0").read_whole()
    open(path, "wb").write(good[:-1] + bytes([good[-1] ^ 1]))  # index checksum broken
    with pytest.raises(StoreFormatError, match="fails the crc32c check"):
        ShardFile(sf.path, values.shape, values.dtype, 100, cname != "none", "fragment f0").read_whole()
    open(path, "wb").write(good[:12])
    with pytest.raises(StoreFormatError, match="shorter than its index"):
        ShardFile(sf.path, values.shape, values.dtype, 100, cname != "none", "fragment f0").read_whole()
    os.unlink(path)
    with pytest.raises(StoreFormatError, match="fragment f0: missing chunk file"):
        ShardFile(sf.path, values.shape, values.dtype, 100, cname != "none", "fragment f0").read_whole()


def test_a_damaged_blosc_chunk_read_whole_is_an_error(tmp_path):
    values = np.arange(1000, dtype=np.int64)
    sf = _write(tmp_path, values, 100, "lz4")
    path = sf.path + "/" + shard_key(1)
    data = bytearray(open(path, "rb").read())
    data[4:8] = (12345).to_bytes(4, "little")  # the first frame claims another size
    open(path, "wb").write(bytes(data))
    with pytest.raises(StoreFormatError, match="damaged Blosc chunk 0"):
        ShardFile(sf.path, values.shape, values.dtype, 100, True, "fragment f0").read_whole()


_DTYPES = ["bool", "uint8", "int32", "int64", "float32", "<f8", ">f4", ">i8"]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("spec", [ChunkSpec(cname="none"), ChunkSpec(cname="lz4", clevel=5, shuffle="shuffle"),
                                  ChunkSpec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                                  ChunkSpec(cname="blosclz", clevel=9, shuffle="noshuffle")])
def test_zarr_python_reads_every_array_with_its_metadata(tmp_path, dtype, spec):
    """The promise that other Zarr v3 readers read the store: zarr-python opens each array the
    writer makes and finds the values, the inner chunks, the shard, the codecs and the attributes."""
    import zarr

    rng = np.random.default_rng(7)
    raw = rng.normal(size=(23, 3)) * 50
    values = (raw > 0) if dtype == "bool" else raw.astype(dtype)
    attrs = {"units": "GeV", "n": 23}
    write_array(tmp_path / "a", values, 5, spec, ("row", "feature"), attrs, fsync=False)
    arr = zarr.open_array(str(tmp_path / "a"), mode="r")
    np.testing.assert_array_equal(arr[:], values)
    native = np.dtype(dtype).newbyteorder("=")
    assert arr.dtype == native and arr.shape == (23, 3)
    assert arr.chunks == (5, 3) and arr.shards == (25, 3)  # 5 inner chunks, the last padded
    assert arr.attrs.asdict() == attrs and arr.metadata.dimension_names == ("row", "feature")
    assert arr.fill_value == native.type(0) and type(arr.fill_value) is native.type
    (sharding,) = arr.metadata.codecs
    assert [type(c).__name__ for c in sharding.index_codecs] == ["BytesCodec", "Crc32cCodec"]
    assert sharding.index_location.value == "end"
    if spec.cname == "none":
        assert arr.compressors == ()
    else:
        (blosc,) = arr.compressors
        assert (blosc.cname.value, blosc.clevel, blosc.shuffle.value, blosc.typesize, blosc.blocksize) == (
            spec.cname, spec.clevel, spec.shuffle, native.itemsize, 0)
    doc = json.loads((tmp_path / "a" / "zarr.json").read_text())
    assert doc["node_type"] == "array" and doc["zarr_format"] == 3 and doc["storage_transformers"] == []
    assert doc["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "."}}
    # the reader of the store sees the same
    sf = ShardFile(tmp_path / "a", values.shape, native, 5, spec.cname != "none", "fragment f0")
    np.testing.assert_array_equal(sf.read(3, 17), values[3:17])


def test_an_array_of_one_row_per_chunk_and_of_fewer_rows_than_a_chunk(tmp_path):
    import zarr

    for rows, n in [(1, 4), (100, 7)]:
        values = np.arange(n * 2, dtype=np.int64).reshape(n, 2)
        write_array(tmp_path / f"a{rows}", values, rows, ChunkSpec(cname="lz4"), ("r", "c"), {}, fsync=False)
        arr = zarr.open_array(str(tmp_path / f"a{rows}"), mode="r")
        assert arr.chunks == (min(rows, n), 2) and arr.shards == (n, 2)
        np.testing.assert_array_equal(arr[:], values)


@pytest.mark.parametrize("dtype", ["float32", "uint8", "bool", "int64"])
@pytest.mark.parametrize("spec", [ChunkSpec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                                  ChunkSpec(cname="lz4", clevel=5, shuffle="shuffle"), ChunkSpec(cname="none")])
def test_the_shard_is_byte_for_byte_what_zarr_python_writes(tmp_path, dtype, spec):
    """zarr-python writing the same values into the same array rewrites the shard to the same
    bytes: the codecs, their settings, the padding of the last chunk and the index are Zarr's."""
    import shutil

    import zarr

    values = (np.random.default_rng(0).normal(size=(23, 3)) * 50).astype(dtype)
    write_array(tmp_path / "ours", values, 5, spec, ("row", "feature"), {}, fsync=False)
    shutil.copytree(tmp_path / "ours", tmp_path / "zarr")
    zarr.open_array(str(tmp_path / "zarr"), mode="r+")[:] = values
    assert (tmp_path / "ours" / "c.0.0").read_bytes() == (tmp_path / "zarr" / "c.0.0").read_bytes()


def test_the_array_document_is_the_zarr_v3_one(tmp_path):
    values = np.zeros((7, 2), np.float32)
    write_array(tmp_path / "f", values, 4, ChunkSpec(cname="lz4", clevel=5, shuffle="shuffle"), ("point", "feature"),
                {"feature_names": ["a", "b"]}, fsync=False)
    sharding = {"chunk_shape": [4, 2], "index_location": "end",
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                           {"name": "blosc", "configuration": {"typesize": 4, "cname": "lz4", "clevel": 5,
                                                               "shuffle": "shuffle", "blocksize": 0}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}
    want = {"zarr_format": 3, "node_type": "array", "shape": [7, 2], "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 2]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}}, "fill_value": 0.0,
            "codecs": [{"name": "sharding_indexed", "configuration": sharding}],
            "attributes": {"feature_names": ["a", "b"]}, "dimension_names": ["point", "feature"],
            "storage_transformers": []}
    # compared as JSON text: 0, 0.0 and false are different fill values there
    assert json.dumps(json.loads((tmp_path / "f" / "zarr.json").read_text()), sort_keys=True) == json.dumps(
        want, sort_keys=True)
    for dtype, fill, bytes_codec in [("uint8", "0", {"name": "bytes"}), ("bool", "false", {"name": "bytes"}),
                                     ("int32", "0", {"name": "bytes", "configuration": {"endian": "little"}})]:
        write_array(tmp_path / dtype, np.zeros(3, dtype), 4, ChunkSpec(cname="none"), ("cloud",), {}, fsync=False)
        doc = json.loads((tmp_path / dtype / "zarr.json").read_text())
        assert json.dumps(doc["fill_value"]) == fill
        assert doc["codecs"][0]["configuration"]["codecs"] == [bytes_codec]  # one-byte types: no endianness


def test_the_shard_is_fsynced_by_default_and_a_rewrite_replaces_it(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    write_array(tmp_path / "a", np.arange(10), 4, ChunkSpec(cname="lz4"), ("r",), {})
    assert synced == [str(tmp_path / "a" / "c.0")]
    write_array(tmp_path / "a", np.arange(5, 12), 4, ChunkSpec(cname="lz4"), ("r",), {}, fsync=False)
    assert len(synced) == 1
    np.testing.assert_array_equal(ShardFile(tmp_path / "a", (7,), np.int64, 4, True, "f").read(), np.arange(5, 12))


def _sf(path, values, rows, compressed):
    return ShardFile(path, values.shape, values.dtype, rows, compressed, "fragment f0")


@pytest.mark.parametrize("cname", ["none", "lz4"])
def test_an_absent_inner_chunk_is_named(tmp_path, cname):
    values = np.arange(40, dtype=np.int64)
    write_array(tmp_path / "a", values, 8, ChunkSpec(cname=cname), ("r",), {}, fsync=False)
    path = tmp_path / "a" / "c.0"
    data = bytearray(path.read_bytes())
    index = np.frombuffer(bytes(data[-84:-4]), "<u8").reshape(5, 2).copy()
    index[2] = (1 << 64) - 1  # how Zarr marks an inner chunk it did not write
    body = index.tobytes()
    from pcdata.store.shards import _crc32c

    path.write_bytes(bytes(data[:-84]) + body + _crc32c(body))
    for read in (lambda s: s.read(), lambda s: s.read_whole(), lambda s: s.read(0, 3)):
        with pytest.raises(StoreFormatError, match=r"^fragment f0: missing chunk 2 in the shard \(.*c\.0\)$"):
            read(_sf(tmp_path / "a", values, 8, cname != "none"))


@pytest.mark.parametrize("cname", ["none", "lz4"])
def test_a_shard_of_only_its_index_and_an_unreadable_shard_are_named(tmp_path, cname):
    values = np.arange(40, dtype=np.int64)
    write_array(tmp_path / "a", values, 8, ChunkSpec(cname=cname), ("r",), {}, fsync=False)
    path = tmp_path / "a" / "c.0"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[-84:])  # every chunk cut away, the index kept
    for read in (lambda s: s.read(), lambda s: s.read_whole()):
        with pytest.raises(StoreFormatError, match=rf"damaged chunk file: 84 bytes where the index ends its chunks at {size} "):
            read(_sf(tmp_path / "a", values, 8, cname != "none"))
    path.unlink()
    path.mkdir()  # something that is there but cannot be read as a file
    for read in (lambda s: s.read(), lambda s: s.read_whole()):
        with pytest.raises(StoreFormatError, match=r"^fragment f0: cannot read chunk file: Is a directory \("):
            read(_sf(tmp_path / "a", values, 8, cname != "none"))


def test_a_read_into_a_wrong_buffer_is_refused():
    sf = ShardFile("/nonexistent", (10, 3), np.float32, 4, False, "f")
    for out in (np.empty((5, 3), np.float64), np.empty((6, 3), np.float32), np.empty((3, 5), np.float32).T):
        with pytest.raises(ValueError, match=r"out must be C-contiguous float32 \(5, 3\), got"):
            sf.read(2, 7, out=out)


def test_read_whole_opens_the_shard_once(tmp_path, monkeypatch):
    import builtins

    import pcdata.store.shards as shards

    values = np.arange(1000, dtype=np.int64)
    write_array(tmp_path / "a", values, 64, ChunkSpec(cname="lz4"), ("r",), {}, fsync=False)
    opened = []
    monkeypatch.setattr(shards, "open", lambda *a, **k: (opened.append(a[0]), builtins.open(*a, **k))[1], raising=False)
    np.testing.assert_array_equal(_sf(tmp_path / "a", values, 64, True).read_whole(), values)
    assert len(opened) == 1


def test_a_blosc_frame_longer_than_its_index_entry_says_is_damaged(tmp_path):
    """The index gives chunk 4 one byte more than its frame: the frame's own length disagrees."""
    from pcdata.store.shards import _crc32c

    values = np.arange(40, dtype=np.int64)
    write_array(tmp_path / "a", values, 8, ChunkSpec(cname="lz4"), ("r",), {}, fsync=False)
    path = tmp_path / "a" / "c.0"
    data = path.read_bytes()
    index = np.frombuffer(data[-84:-4], "<u8").reshape(5, 2).copy()
    index[4, 1] += 1
    body = index.tobytes()
    path.write_bytes(data[:-84] + b"\0" + body + _crc32c(body))
    for read in (lambda s: s.read(), lambda s: s.read_whole(), lambda s: s.read(35, 37)):
        with pytest.raises(StoreFormatError, match=r"damaged Blosc chunk 4 \(a frame of \d+ bytes stored in \d+\)"):
            read(_sf(tmp_path / "a", values, 8, True))
