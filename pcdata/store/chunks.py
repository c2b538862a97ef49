"""Direct chunk decoding for the arrays pcdata writes: Blosc chunk files decoded into the caller's buffer.

zarr-python's read path (async codec pipeline, a fresh array per chunk, a final copy) decodes
about 0.3 GB/s here, while Blosc itself decodes about 3 GB/s (``benchmarks/bench_loader.py``).
For the one layout the writer produces (regular chunks, ``bytes`` + ``blosc`` codecs, default
chunk keys, a local directory) :class:`ChunkFile` reads each chunk file and decompresses it
straight into the destination rows. Any other layout (sharding, other codecs, big-endian, another
key encoding) is left to zarr: :func:`open_chunks` then returns None.
"""

from __future__ import annotations

import json
import math
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from ..errors import StoreFormatError


def decode_blosc(raw, dest: np.ndarray, nbytes: int) -> None:
    """Decode one Blosc frame into ``dest``, refusing a frame that does not decode to ``nbytes``.

    Raises:
        ValueError: a frame of another size, or one Blosc cannot decode.
    """
    from numcodecs import blosc

    # Blosc's 16-byte header holds the decoded size at bytes 4-8: a frame that decodes to fewer
    # bytes would leave the end of ``dest`` stale.
    size = int.from_bytes(bytes(raw[4:8]), "little") if len(raw) >= 16 else -1
    if size != nbytes:
        raise ValueError(f"decodes to {size} bytes, expected {nbytes}")
    # bytes 12-16 hold the frame's own length: a frame longer or shorter than the chunk its index
    # (or its file) gives is damaged, even where Blosc would decode its first bytes.
    cbytes = int.from_bytes(bytes(raw[12:16]), "little")
    if cbytes != len(raw):
        raise ValueError(f"a frame of {cbytes} bytes stored in {len(raw)}")
    try:
        blosc.decompress(raw, dest)
    except RuntimeError as err:  # numcodecs raises RuntimeError for a bad frame
        raise ValueError(str(err)) from err

__all__ = ["ChunkFile", "MappedRows", "map_rows", "open_chunks"]


class ChunkFile:
    """Row ranges of a 2-d (or 1-d) array whose chunks span every column.

    Args:
        path: the array's directory (holding ``zarr.json``).
        shape, dtype, rows: array shape, numpy dtype and rows per chunk.
        fill: the fill value, for chunks that were never written.
        compressed: chunks are Blosc frames (else raw little-endian bytes).
        separator: the chunk key separator (``/`` or ``.``).
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, rows: int, fill: float,
                 compressed: bool, separator: str):
        self.path, self.shape, self.dtype, self.rows = path, shape, dtype, rows
        self.fill, self.compressed, self.separator = fill, compressed, separator
        self.row_shape = shape[1:]
        self.chunk_nbytes = rows * int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self._local = threading.local()  # one scratch chunk per thread

    def _key(self, i: int) -> Path:
        inner = self.separator.join(["0"] * (len(self.shape) - 1))
        return self.path / f"c{self.separator}{i}{self.separator if inner else ''}{inner}"

    def segment(self, i: int) -> tuple[Path, int] | None:
        """File and byte offset of raw chunk ``i`` for mapping; None when it was never written."""
        key = self._key(i)
        try:
            self._check_raw_size(key, key.stat().st_size)
        except FileNotFoundError:
            return None
        return key, 0

    def _check_raw_size(self, key: Path, size: int) -> None:
        """A raw chunk is exactly one chunk of bytes; anything else was cut short or is foreign."""
        if size != self.chunk_nbytes:
            raise StoreFormatError(f"{key}: damaged chunk ({size} bytes, expected {self.chunk_nbytes})")

    def _read_raw(self, i: int, first: int, dest: np.ndarray) -> None:
        """Rows ``first:first + len(dest)`` of uncompressed chunk ``i``, read straight into ``dest``.

        Raw chunks need no scratch: the bytes go from the page cache into their place in one
        copy, and a range inside a chunk is read alone.
        """
        key = self._key(i)
        row_bytes = self.chunk_nbytes // self.rows
        view = memoryview(dest.reshape(-1).view(np.uint8))
        try:
            with open(key, "rb", buffering=0) as f:
                self._check_raw_size(key, os.fstat(f.fileno()).st_size)
                f.seek(first * row_bytes)
                got = 0
                while got < len(view):  # readinto may return less than asked
                    n = f.readinto(view[got:])
                    if not n:
                        raise StoreFormatError(f"{key}: damaged chunk (ended while reading)")
                    got += n
        except FileNotFoundError:  # zarr does not write chunks equal to the fill value
            dest[...] = self.fill
        except OSError as err:
            raise StoreFormatError(f"{key}: cannot read chunk ({err.strerror or err})") from err

    def _decode_into(self, i: int, dest: np.ndarray) -> None:
        """Blosc chunk ``i`` (all ``rows`` rows) into ``dest``, a C-contiguous array of that many bytes."""
        key = self._key(i)
        try:
            with open(key, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                # Into a reused buffer: a fresh bytes object per chunk costs page faults on every read.
                buf = getattr(self._local, "raw", None)
                if buf is None or len(buf) < size:
                    buf = self._local.raw = np.empty(max(size, 2 * self.chunk_nbytes), dtype=np.uint8)
                raw = buf[: f.readinto(memoryview(buf)[:size])]
        except FileNotFoundError:  # zarr does not write chunks equal to the fill value
            dest[...] = self.fill
            return
        except OSError as err:
            raise StoreFormatError(f"{key}: cannot read chunk ({err.strerror or err})") from err
        try:
            decode_blosc(raw, dest, self.chunk_nbytes)
        except ValueError as err:
            raise StoreFormatError(f"{key}: damaged Blosc chunk ({err})") from err

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` (clipped to the array), into ``out`` when given.

        Whole chunks decode straight into ``out``; the partial chunks at the ends go through a
        scratch chunk kept per thread.
        """
        start, stop = max(0, int(start)), min(int(stop), self.shape[0])
        n = max(0, stop - start)
        if out is None:
            out = np.empty((n, *self.row_shape), dtype=self.dtype)
        elif out.shape != (n, *self.row_shape) or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {self.dtype} {(n, *self.row_shape)}, got {out.dtype} {out.shape}")
        if n == 0:
            return out
        r = self.rows
        for i in range(start // r, (stop - 1) // r + 1):
            lo, hi = i * r, (i + 1) * r
            a, b = max(lo, start), min(hi, stop)
            if not self.compressed:
                self._read_raw(i, a - lo, out[a - start : b - start])
            elif a == lo and b == hi:
                self._decode_into(i, out[a - start : b - start])
            else:
                scratch = getattr(self._local, "scratch", None)
                if scratch is None:
                    scratch = self._local.scratch = np.empty((r, *self.row_shape), dtype=self.dtype)
                self._decode_into(i, scratch)
                out[a - start : b - start] = scratch[a - lo : b - lo]
        return out


def open_chunks(path: Path) -> ChunkFile | None:
    """A :class:`ChunkFile` for the array at ``path`` when its layout is the plain one; else None."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array" or meta.get("storage_transformers"):
            return None
        shape = tuple(int(s) for s in meta["shape"])
        grid, keys = meta["chunk_grid"], meta["chunk_key_encoding"]
        chunk = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
        if grid["name"] != "regular" or len(shape) not in (1, 2) or chunk[1:] != shape[1:] or keys["name"] != "default":
            return None
        separator = keys.get("configuration", {}).get("separator", "/")
        dtype = np.dtype(meta["data_type"])
        if dtype.kind not in "biuf":
            return None
        codecs = meta["codecs"]
        if not codecs or codecs[0]["name"] != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
            return None
        if len(codecs) == 2 and codecs[1]["name"] == "blosc":
            compressed = True
        elif len(codecs) == 1:
            compressed = False
        else:
            return None
        fill = meta.get("fill_value", 0)
        fill = float(0 if fill is None else fill)  # zarr writes "NaN" and "Infinity" as strings
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not np.little_endian:  # the chunks are little-endian bytes; leave conversions to zarr
        return None
    return ChunkFile(path, shape, dtype, chunk[0], fill, compressed, separator)


# -- mapping raw chunks ----------------------------------------------------------------------------
# Raw (uncompressed) chunks hold exactly the array's bytes, so the page cache itself can serve as
# the decoded rows: every chunk file is mapped, read-only, at its place in one reserved address
# range, and a fragment's points become one contiguous array without a copy. Loaders then gather
# batches straight from the page cache, as from an array in memory.

_PROT_READ, _MAP_SHARED, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS, _MAP_NORESERVE = 1, 1, 2, 0x10, 0x20, 0x4000
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MappedRows:
    """Several raw-chunk arrays of the same width mapped back to back: one read-only ``rows`` array.

    The mapping lives as long as ``rows`` (or a view of it) does; :meth:`close` undoes it at once.

    Attributes:
        rows: float rows ``[R, F]`` (read-only; the gaps between arrays read as zeros).
        first: row of ``rows`` where each array starts.
    """

    def __init__(self, rows: np.ndarray, first: np.ndarray, close):
        self.rows, self.first, self._close = rows, first, close

    def close(self) -> None:
        """Unmap now: ``rows`` and every view of it must not be used afterwards."""
        self._close()


def _libc():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def map_rows(arrays: list) -> MappedRows | None:
    """Map the chunks of raw float32 2-d arrays into one contiguous read-only array.

    ``arrays`` are :class:`ChunkFile` (format 1) or :class:`~pcdata.store.shards.ShardFile`
    (format 2): anything with ``segment(i) -> (file, offset)`` for chunk ``i``.

    Returns None where mapping does not apply: not Linux, compressed chunks, a fill value other
    than zero (unwritten chunks read as the zeros of the reservation), mixed widths, or chunks
    that are not a whole number of pages.

    Raises:
        StoreFormatError: a chunk file of the wrong size (mapping it would fault on access).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or not arrays:
        return None
    width = arrays[0].row_shape
    if any(a.compressed or a.fill != 0 or a.dtype != np.float32 or len(a.shape) != 2 or a.row_shape != width
           or a.chunk_nbytes % _PAGE for a in arrays):
        return None
    row_bytes = int(width[0]) * 4
    if row_bytes == 0:
        return None
    # Each array starts at a whole number of pages and of rows from the reservation's start.
    unit = _PAGE * row_bytes // math.gcd(_PAGE, row_bytes)
    starts, total = [], 0
    for a in arrays:
        starts.append(total)
        n_chunks = -(-a.shape[0] // a.rows)
        total += -(-(n_chunks * a.chunk_nbytes) // unit) * unit
    total = max(total, unit)
    libc = _libc()
    base = libc.mmap(None, total, _PROT_READ, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        return None
    unmap = lambda: libc.munmap(base, total)  # noqa: E731 - one call, kept by the finalizer
    try:
        for a, start in zip(arrays, starts):
            for i in range(-(-a.shape[0] // a.rows)):
                segment = a.segment(i)
                if segment is None:
                    continue  # never written (format 1): the reservation's zeros are the fill value
                key, offset = segment
                if offset % _PAGE:
                    unmap()
                    return None
                fd = os.open(key, os.O_RDONLY)
                try:
                    at = libc.mmap(base + start + i * a.chunk_nbytes, a.chunk_nbytes, _PROT_READ, _MAP_SHARED | _MAP_FIXED, fd, offset)
                    if at != base + start + i * a.chunk_nbytes:
                        raise StoreFormatError(f"{key}: cannot map chunk ({os.strerror(ctypes.get_errno())})")
                finally:
                    os.close(fd)
    except BaseException:
        unmap()
        raise
    buf = (ctypes.c_char * total).from_address(base)
    # Unmapped when the buffer goes, which every view of ``rows`` keeps alive through its base.
    close = weakref.finalize(buf, unmap)
    rows = np.frombuffer(buf, dtype=np.float32).reshape(-1, width[0])
    rows.flags.writeable = False
    return MappedRows(rows, np.array(starts, dtype=np.int64) // row_bytes, close)
