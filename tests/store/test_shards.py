"""Shard files read whole: the same values as a row-range read, the same errors."""

from __future__ import annotations

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
