"""Format 2 arrays: one Zarr v3 shard per array per fragment, written and read by pcdata itself.

The file is standard ``sharding_indexed`` (inner chunks back to back, then the index: one
``(offset, nbytes)`` pair of little-endian uint64 per inner chunk and its crc32c), so zarr-python
and other Zarr v3 readers read it; pcdata writes and reads it directly because zarr-python's
generic path costs 10x the decoding itself here (``benchmarks/bench_loader.py``) and because it
reads a missing chunk as the fill value, where a store must report it.

Every inner chunk is written, whatever its content. Reading checks the shard's size against its
index, the index's crc32c, every chunk's place and (for Blosc) decoded size: anything else is a
:class:`~pcdata.errors.StoreFormatError` naming the file and the fragment.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import StoreFormatError
from . import remote
from .chunks import decode_blosc
from .format import ChunkSpec

__all__ = ["shard_key", "write_array", "ShardFile"]

_EMPTY = (1 << 64) - 1  # the sharding codec's marker of an absent inner chunk
_WHOLE_READ = 1 << 22  # shard files up to this size are read whole by ShardFile.read_whole
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def shard_key(ndim: int) -> str:
    """File name of an array's only shard: chunk (0, ...) with the ``.`` separator."""
    return "c" + ".0" * ndim


def _inner_rows(n: int, rows: int) -> int:
    return max(1, min(rows, n))


def array_document(shape: tuple[int, ...], dtype: np.dtype, rows: int, spec: ChunkSpec,
                   dims: tuple[str, ...], attrs: dict) -> dict:
    """The array's ``zarr.json``: one shard covering the array, inner chunks of ``rows`` rows."""
    inner = _inner_rows(shape[0], rows)
    n_inner = max(1, -(-shape[0] // inner))
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if spec.cname != "none":
        codecs.append({"name": "blosc", "configuration": {
            "typesize": dtype.itemsize, "cname": spec.cname, "clevel": spec.clevel, "shuffle": spec.shuffle, "blocksize": 0}})
    if dtype.itemsize == 1:
        codecs[0] = {"name": "bytes"}  # one-byte types have no endianness (and zarr refuses one)
    fill = False if dtype.kind == "b" else (0.0 if dtype.kind == "f" else 0)
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [n_inner * inner, *shape[1:]]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": fill,
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [inner, *shape[1:]],
            "codecs": codecs,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end",
        }}],
        "attributes": attrs,
        "dimension_names": list(dims),
        "storage_transformers": [],
    }


def _crc32c(data: bytes | memoryview) -> bytes:
    import google_crc32c

    return int(google_crc32c.value(bytes(data))).to_bytes(4, "little")


def write_array(path: Path, values: np.ndarray, rows: int, spec: ChunkSpec, dims: tuple[str, ...], attrs: dict,
                *, fsync: bool = True) -> None:
    """Write ``values`` as a sharded Zarr v3 array at directory ``path`` (zarr.json + one shard).

    Plain writes: the caller writes into a temporary directory that is renamed into place whole.
    The shard is fsynced (``fsync``) so that a committed fragment survives a power cut."""
    values = np.ascontiguousarray(values)
    if values.dtype.byteorder == ">":
        values = values.astype(values.dtype.newbyteorder("<"))
    path.mkdir(parents=True, exist_ok=True)
    doc = array_document(values.shape, values.dtype, rows, spec, dims, attrs)
    (path / "zarr.json").write_text(json.dumps(doc) + "\n")
    n = values.shape[0]
    if n == 0:
        return
    inner = _inner_rows(n, rows)
    n_inner = -(-n // inner)
    pieces, index = [], np.empty((n_inner, 2), dtype="<u8")
    offset = 0
    if spec.cname != "none":
        from numcodecs import blosc
    for i in range(n_inner):
        chunk = values[i * inner : (i + 1) * inner]
        # the last inner chunk is stored at full size, padded with the fill value
        if len(chunk) < inner:  # pragma: no mutate (<=: padding by zero rows)
            chunk = np.concatenate([chunk, np.zeros((inner - len(chunk), *values.shape[1:]), values.dtype)])
        if spec.cname == "none":
            data = memoryview(chunk).cast("B")  # pragma: no mutate (signed or unsigned bytes: the same bytes)
        else:
            data = blosc.compress(chunk, spec.cname.encode(), spec.clevel, _SHUFFLE[spec.shuffle], 0)
        pieces.append(data)
        index[i] = (offset, len(data))
        offset += len(data)
    index_bytes = index.tobytes()
    with open(path / shard_key(values.ndim), "wb") as f:
        f.writelines([*pieces, index_bytes, _crc32c(index_bytes)])
        if fsync:
            f.flush()
            os.fsync(f.fileno())


class ShardFile:
    """Row ranges of one format 2 array (read straight from its shard, never through zarr).

    Args:
        path: the array's directory.
        shape, dtype: array shape and numpy dtype (from the store's manifests and features).
        rows: rows per inner chunk as written (the layout's, clipped to the array).
        compressed: inner chunks are Blosc frames (else raw bytes).
        where: what to name in errors, e.g. ``"<store>: fragment f000000003"``.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype, rows: int, compressed: bool, where: str):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        self.rows = _inner_rows(self.shape[0], rows)
        self.compressed, self.where = compressed, where
        self.row_shape = self.shape[1:]
        self.chunk_nbytes = self.rows * math.prod(self.row_shape) * self.dtype.itemsize
        self.n_chunks = -(-self.shape[0] // self.rows)
        self.file = f"{self.path}/{shard_key(len(self.shape))}"
        self.fill = 0.0
        self._entries: np.ndarray | None = None
        self._local = threading.local()
        self.remote = remote.is_url(self.file)  # read by ranged requests (remote.py), never mapped

    def _error(self, problem: str) -> StoreFormatError:
        return StoreFormatError(f"{self.where}: {problem} ({self.file})")

    @property
    def entries(self) -> np.ndarray:
        """``[n_chunks, 2]`` (offset, nbytes) of every inner chunk, checked against the file."""
        if self._entries is None:
            self._entries = self._read_index()
        return self._entries

    def _read_index(self) -> np.ndarray:
        index_size = 16 * self.n_chunks + 4
        if self.remote:
            try:
                size = remote.file_size(self.file)
                if size < index_size:
                    raise self._error(f"damaged chunk file: {size} bytes, shorter than its index")
                tail = remote.read_range(self.file, size - index_size, size)
            except FileNotFoundError:
                raise self._error("missing chunk file") from None
            return self._parse_index(tail, size)
        try:
            with open(self.file, "rb", buffering=0) as f:  # pragma: no mutate (unbuffered: speed only)
                size = os.fstat(f.fileno()).st_size
                if size < index_size:
                    raise self._error(f"damaged chunk file: {size} bytes, shorter than its index")
                f.seek(size - index_size)
                tail = f.read(index_size)  # pragma: no mutate (the rest of the file from there)
        except FileNotFoundError:
            raise self._error("missing chunk file") from None
        except OSError as err:
            raise self._error(f"cannot read chunk file: {err.strerror or err}") from err
        return self._parse_index(tail, size)

    def _parse_index(self, tail: bytes, size: int) -> np.ndarray:
        n = self.n_chunks
        index_size = 16 * n + 4
        if len(tail) != index_size:
            raise self._error(f"damaged chunk file: {size} bytes, shorter than its index")
        body = tail[:-4]
        if _crc32c(body) != tail[-4:]:
            raise self._error("damaged chunk file: its index fails the crc32c check")
        entries = np.frombuffer(body, dtype="<u8").reshape(n, 2)
        if (entries == _EMPTY).any():
            first = int(np.flatnonzero((entries == _EMPTY).any(axis=1))[0])
            raise self._error(f"missing chunk {first} in the shard")
        ends = entries[:, 0] + entries[:, 1]
        if int(ends.max()) != size - index_size:  # n >= 1: a shard file holds a chunk
            raise self._error(f"damaged chunk file: {size} bytes where the index ends its chunks at "
                              f"{int(ends.max()) + index_size}")
        if not self.compressed and (entries[:, 1] != self.chunk_nbytes).any():
            raise self._error(f"damaged chunk file: a raw chunk is not {self.chunk_nbytes} bytes")
        return entries.astype(np.int64)

    def read_whole(self) -> np.ndarray:
        """The whole array, from one read of a small shard file (offsets and cloud fields: with
        many small fragments, one open and one read each instead of two opens and three reads)."""
        if self._entries is not None or self.shape[0] == 0:
            return self.read()
        index_size = 16 * self.n_chunks + 4
        try:
            if self.remote:  # one GET: offsets and cloud fields are small
                data = remote.read_bytes(self.file)
            else:
                with open(self.file, "rb", buffering=0) as f:  # pragma: no mutate (unbuffered: speed only)
                    size = os.fstat(f.fileno()).st_size
                    if size > _WHOLE_READ:  # pragma: no mutate (>=: either path reads the same)
                        return self.read()
                    data = f.read()
        except FileNotFoundError:
            raise self._error("missing chunk file") from None
        except OSError as err:
            raise self._error(f"cannot read chunk file: {err.strerror or err}") from err
        size = len(data)  # a file cut while it was read is what the checks below see
        if size < index_size:
            raise self._error(f"damaged chunk file: {size} bytes, shorter than its index")
        self._entries = self._parse_index(data[size - index_size :], size)
        out = np.empty(self.shape, dtype=self.dtype)
        if not len(out):
            return out
        flat, r = out.reshape(len(out), -1), self.rows  # pragma: no mutate (numpy reads any negative as -1)
        for i, (offset, nbytes) in enumerate(self._entries):
            raw = np.frombuffer(data, np.uint8, count=int(nbytes), offset=int(offset))
            a, b = i * r, min((i + 1) * r, self.shape[0])
            if not self.compressed:  # the chunk's leading rows (a last chunk is padded to whole rows)
                flat[a:b].view(np.uint8).reshape(-1)[:] = raw[: (b - a) * flat.shape[1] * self.dtype.itemsize]  # pragma: no mutate
                continue
            dest = out[a:b] if b - a == r else np.empty((r, *self.row_shape), self.dtype)
            self._decode(i, raw, dest)
            if b - a != r:  # pragma: no mutate (copying a whole chunk through dest reads the same)
                out[a:b] = dest[: b - a]
        return out

    def segment(self, i: int) -> tuple[Path, int]:
        """File and byte offset of raw inner chunk ``i`` (for mapping)."""
        return self.file, int(self.entries[i, 0])

    def _chunk_bytes(self, i: int, f) -> np.ndarray:
        offset, nbytes = self.entries[i]
        # a per-thread buffer reused across chunks (speed only: any fresh buffer reads the same)
        buf = getattr(self._local, "raw", None)  # pragma: no mutate
        if buf is None or len(buf) < nbytes:  # pragma: no mutate
            buf = self._local.raw = np.empty(max(int(nbytes), 2 * self.chunk_nbytes), dtype=np.uint8)  # pragma: no mutate
        got = os.preadv(f.fileno(), [memoryview(buf)[:nbytes]], int(offset))
        if got != nbytes:
            raise self._error(f"damaged chunk file: chunk {i} cut short")
        return buf[:nbytes]

    def _decode(self, i: int, raw, dest: np.ndarray) -> None:
        try:
            decode_blosc(raw, dest, self.chunk_nbytes)
        except ValueError as err:
            raise self._error(f"damaged Blosc chunk {i} ({err})") from err

    def _decode_into(self, i: int, f, dest: np.ndarray) -> None:
        self._decode(i, self._chunk_bytes(i, f), dest)

    def read(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` (clipped to the array), into ``out`` when given."""
        stop = self.shape[0] if stop is None else stop
        start, stop = max(0, int(start)), min(int(stop), self.shape[0])
        n = max(0, stop - start)
        if out is None:
            out = np.empty((n, *self.row_shape), dtype=self.dtype)
        elif out.shape != (n, *self.row_shape) or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {self.dtype} {(n, *self.row_shape)}, got {out.dtype} {out.shape}")
        if n == 0:
            return out
        entries, r = self.entries, self.rows
        if self.remote:
            return self._read_remote(start, stop, out)
        row_bytes = self.chunk_nbytes // r
        try:
            f = open(self.file, "rb", buffering=0)  # pragma: no mutate (unbuffered: speed only)
        except OSError as err:
            raise self._error(f"cannot read chunk file: {err.strerror or err}") from err
        with f:
            for i in range(start // r, (stop - 1) // r + 1):
                lo, hi = i * r, (i + 1) * r
                a, b = max(lo, start), min(hi, stop)
                dest = out[a - start : b - start]
                if not self.compressed:
                    view = memoryview(dest.reshape(-1).view(np.uint8))  # pragma: no mutate (any negative: -1)
                    got = os.preadv(f.fileno(), [view], int(entries[i, 0]) + (a - lo) * row_bytes)
                    if got != len(view):
                        raise self._error(f"damaged chunk file: chunk {i} cut short")
                elif a == lo and b == hi:
                    self._decode_into(i, f, dest)
                else:
                    # per-thread scratch reused across chunks (speed only)
                    scratch = getattr(self._local, "scratch", None)  # pragma: no mutate
                    if scratch is None or scratch.shape[0] != r:  # pragma: no mutate
                        scratch = self._local.scratch = np.empty((r, *self.row_shape), dtype=self.dtype)
                    self._decode_into(i, f, scratch)
                    dest[...] = scratch[a - lo : b - lo]
        return out

    def _read_remote(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows ``start:stop`` from one ranged request spanning the chunks that hold them (chunks
        lie back to back in index order, as written)."""
        entries, r = self.entries, self.rows
        first, last = start // r, (stop - 1) // r
        # min and max: a shard of another writer may hold its chunks in another order
        lo_byte = int(entries[first:last + 1, 0].min())
        hi_byte = int((entries[first:last + 1, 0] + entries[first:last + 1, 1]).max())
        try:
            data = remote.read_range(self.file, lo_byte, hi_byte)
        except FileNotFoundError:
            raise self._error("missing chunk file") from None
        if len(data) != hi_byte - lo_byte:
            raise self._error(f"damaged chunk file: chunks {first}-{last} cut short")
        row_bytes = self.chunk_nbytes // r
        for i in range(first, last + 1):
            a, b = max(i * r, start), min((i + 1) * r, stop)
            dest = out[a - start : b - start]
            raw = np.frombuffer(data, np.uint8, count=int(entries[i, 1]), offset=int(entries[i, 0]) - lo_byte)
            if not self.compressed:
                skip = (a - i * r) * row_bytes
                dest.reshape(-1).view(np.uint8)[:] = raw[skip : skip + (b - a) * row_bytes]  # pragma: no mutate (any negative: -1)
            elif b - a == r:
                self._decode(i, raw, dest)
            else:
                scratch = np.empty((r, *self.row_shape), dtype=self.dtype)
                self._decode(i, raw, scratch)
                dest[...] = scratch[a - i * r : b - i * r]
        return out
