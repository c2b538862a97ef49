"""Reading a store: :func:`open_store` and :class:`Store`.

A reader trusts only the root metadata: fragments that no manifest it names lists do not exist
for it. Opening reads the root alone; index manifests are read when a request touches their
fragments, a fragment's offsets and cloud fields when a request touches the fragment (a bounded
number of fragments stay cached), and points per request, only the chunks that hold them.
Format 1 stores (fragment list in the root, chunks through zarr) are read the same way.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..clouds import Clouds, Padded
from ..errors import NotAStoreError, SplitNotFoundError, StoreFormatError, StoreIncompleteError, StoreNotFoundError
from .chunks import ChunkFile, MappedRows, map_rows, open_chunks
from .format import FeatureStats, FragmentInfo, StoreMeta
from .metadata import fragment_dir, read_index_part, read_logs, read_root
from .remote import is_url
from .shards import ShardFile
from .splits import split_cuts, split_indices, split_member
from .writer import content_checksum

__all__ = ["open_store", "Store"]

# Fragments whose offsets and fields stay in memory: up to 1,024, and no more than about 64 MB of
# them (fragments of 10^4 jets hold about 0.3 MB each: about 200 of them).
_CACHED_FRAGMENTS, _CACHE_BYTES = 1024, 64 << 20


def open_store(path: str | os.PathLike, *, allow_incomplete: bool = False) -> "Store":
    """Open a point-cloud store for reading.

    Args:
        path: the store directory, or its ``http(s)://`` URL (read-only, format 2; see
            :mod:`.remote`). Catalog names are resolved by the callers that accept them,
            ``pcdata.open_store``.
        allow_incomplete: also open an interrupted ingest; only its committed fragments are visible.

    Raises:
        StoreNotFoundError: nothing at ``path``.
        NotAStoreError: ``path`` holds no pcdata store.
        StoreFormatError: unknown format or version, or invalid metadata.
        StoreIncompleteError: an interrupted ingest (unless ``allow_incomplete``).
        RemoteStoreError: the server failed or could not be reached.
    """
    if is_url(path):
        return _open_remote(os.fspath(path).rstrip("/"), allow_incomplete)
    p = Path(path)
    if not p.exists():
        raise StoreNotFoundError(f"{path}: no such store")
    if not p.is_dir():
        raise NotAStoreError(f"{path}: not a pcdata store (a file, expected a Zarr store directory)")
    root = read_root(p)
    if root is None:
        raise NotAStoreError(f"{path}: not a pcdata store (no zarr.json with pcdata metadata)")
    return _open_root(p, root, allow_incomplete)


def _open_remote(url: str, allow_incomplete: bool) -> "Store":
    """A store at an ``http(s)://`` URL (any fsspec protocol with byte ranges), read-only."""
    try:
        root = read_root(url)
    except FileNotFoundError:
        raise StoreNotFoundError(f"{url}: no such store (no zarr.json on the server)") from None
    if root is None:
        raise NotAStoreError(f"{url}: not a pcdata store (no zarr.json with pcdata metadata)")
    if root.v1_fragments is not None:
        raise StoreFormatError(f"{url}: a format 1 store is read from a local path only; "
                               "`pcdata migrate` makes it format 2, which is read over HTTP too")
    return _open_root(url, root, allow_incomplete)


def _open_root(path: Path | str, root, allow_incomplete: bool) -> "Store":
    meta = root.meta
    if meta.status != "complete" and not allow_incomplete:
        raise StoreIncompleteError(
            f"{path}: incomplete store, {meta.num_fragments} of {meta.expected_fragments} fragments committed "
            "(an ingest was interrupted); re-run the same ingest command to finish it"
        )
    if root.v1_fragments is not None:
        return Store(path, meta, fragments=root.v1_fragments)
    if meta.status != "complete":
        return Store(path, meta, fragments=tuple(read_logs(path, meta)))
    return Store(path, meta)


class _Fragment:
    """One committed fragment's arrays (format 2: sharded, read by :class:`ShardFile`)."""

    # Stores have 10^5 fragments and more, and whole-store reads touch every one: building a
    # fragment costs one path join; each array's reader is made when first read.
    def __init__(self, root: Path, meta: StoreMeta, info: FragmentInfo):
        self.root, self.info, self.meta = root, info, meta
        self.path = fragment_dir(root, meta.generation, info.id)
        self.where = f"{root}: fragment {info.id}"
        self._arrays: dict[str, ShardFile] = {}
        self.fields: dict[str, np.ndarray] = {}

    def _array(self, name: str) -> ShardFile:
        array = self._arrays.get(name)
        if array is None:
            info, layout = self.info, self.meta.layout
            if name == "points":
                shape, dtype, rows = (info.num_points, len(self.meta.point_features)), np.float32, layout.points_rows
            elif name == "offsets":
                shape, dtype, rows = (info.num_clouds + 1,), np.int64, layout.clouds
            else:
                feature = next(f for f in self.meta.cloud_features if f"cloud/{f.name}" == name)
                shape, dtype, rows = (info.num_clouds,), feature.dtype, layout.clouds
            array = self._arrays[name] = ShardFile(f"{self.path}/{name}", shape, dtype, rows,
                                                   layout.cname != "none", self.where)
        return array

    @property
    def rows(self) -> int:
        """Points per chunk."""
        return self._points_chunks.rows

    @cached_property
    def offsets(self) -> np.ndarray:
        off = self._array("offsets").read_whole()
        n = self.info.num_points
        if off[0] != 0 or off[-1] != n or (len(off) > 1 and (np.diff(off) < 0).any()):
            raise StoreFormatError(f"{self.where}: damaged offsets (they must rise from 0 to {n})")
        return off

    def field(self, name: str) -> np.ndarray:
        if name not in self.fields:
            self.fields[name] = self._array(f"cloud/{name}").read_whole()
        return self.fields[name]

    @property
    def _points_chunks(self) -> ShardFile | ChunkFile:
        return self._array("points")

    def read_points(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of this fragment's points (into ``out`` when given)."""
        return self._points_chunks.read(start, stop, out)

    def gather(self, local: np.ndarray, names: Sequence[str], point_features: tuple[str, ...]) -> Clouds:
        """Clouds at sorted local indices; reads each run of needed point chunks once."""
        off = self.offsets
        starts, stops = off[local], off[local + 1]
        counts = stops - starts
        offsets = np.zeros(len(local) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = self.rows
        needed = np.zeros(max(1, -(-self.info.num_points // rows)) + 1, dtype=np.int64)
        nz = counts > 0
        np.add.at(needed, starts[nz] // rows, 1)
        np.add.at(needed, (stops[nz] - 1) // rows + 1, -1)
        chunk_used = np.cumsum(needed)[:-1] > 0
        # Runs of consecutive needed chunks become one contiguous read each.
        edges = np.flatnonzero(np.diff(np.concatenate([[False], chunk_used, [False]])))
        run_lo, run_hi = edges[0::2] * rows, np.minimum(edges[1::2] * rows, self.info.num_points)
        buffer = (np.concatenate([self.read_points(a, b) for a, b in zip(run_lo, run_hi)])
                  if len(run_lo) else np.zeros((0, len(point_features)), dtype=np.float32))
        run_base = np.concatenate([[0], np.cumsum(run_hi - run_lo)])[:-1]
        row = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        run = np.searchsorted(run_lo, row, side="right") - 1
        points = buffer[row - run_lo[run] + run_base[run]]
        return Clouds(points, offsets, {n: self.field(n)[local] for n in names}, point_features)


class _FragmentV1(_Fragment):
    """A format 1 fragment: one unsharded group, read through zarr or :class:`ChunkFile`."""

    def __init__(self, root: Path, info: FragmentInfo):
        self.root, self.info = root, info
        self.path = Path(fragment_dir(root, "", info.id))  # pragma: no mutate (None is no generation too: format 1)
        self.fields = {}

    def _open(self, name: str):
        import zarr

        try:
            return zarr.open_array(str(self.path), path=name, mode="r")  # pragma: no mutate (no mode writes on opening)
        except Exception as err:  # zarr raises several kinds for a missing or broken node
            raise StoreFormatError(f"{self.root}: fragment {self.info.id} is missing or damaged ({name}: {err})") from err

    @cached_property
    def points(self):
        return self._open("points")

    @property
    def rows(self) -> int:
        return self.points.chunks[0] if self.info.num_points else 1

    @cached_property
    def offsets(self) -> np.ndarray:
        return np.asarray(self._open("offsets")[:], dtype=np.int64)

    def field(self, name: str) -> np.ndarray:
        if name not in self.fields:
            self.fields[name] = np.asarray(self._open(f"cloud/{name}")[:])
        return self.fields[name]

    @cached_property
    def _points_chunks(self) -> ChunkFile | None:
        return open_chunks(self.path / "points")

    def read_points(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        fast = self._points_chunks
        if fast is not None:
            return fast.read(start, stop, out)
        data = np.asarray(self.points[start:stop], dtype=np.float32)  # pragma: no mutate (format 1 points are float32)
        if out is None:
            return data
        out[...] = data
        return out


class _Part:
    """The fragments one index manifest lists, with their global cloud and point starts."""

    def __init__(self, infos: Sequence[FragmentInfo], cloud_base: int, point_base: int):
        self.infos = tuple(infos)
        self.starts = cloud_base + np.cumsum([0, *(f.num_clouds for f in infos)])
        self.point_starts = point_base + np.cumsum([0, *(f.num_points for f in infos)])


class Store:
    """A point-cloud store opened for reading. Create with :func:`open_store`.

    Indexing: ``store[i]`` is one cloud (a dict of ``points`` and the cloud fields);
    ``store[a:b]`` and :meth:`read` give :class:`~pcdata.Clouds`; :meth:`take` gathers any
    indices; :meth:`split` the clouds of a named split.
    """

    def __init__(self, path: Path, meta: StoreMeta, *, fragments: Sequence[FragmentInfo] | None = None):
        self.path = path
        self._root = os.fspath(path)
        self.meta = meta
        self._v1 = meta.version == 1
        self._index = meta.manifests.index  # the parts read on demand (none when fragments are given)
        if fragments is not None:  # listed in full already: one in-memory part
            self._parts: dict[int, _Part] = {0: _Part(fragments, 0, 0)}
            sizes = [(len(fragments), sum(f.num_clouds for f in fragments), sum(f.num_points for f in fragments))]
        else:
            self._parts = {}
            sizes = [(p.fragments, p.clouds, p.points) for p in self._index]
        # First fragment, cloud and point of each part, then the totals (lists of ints: int64 arrays).
        self._part_frags, self._part_clouds, self._part_points = (
            np.cumsum([0, *(size[j] for size in sizes)]) for j in range(3))
        if self._part_clouds[-1] != meta.num_clouds or self._part_points[-1] != meta.num_points:
            raise StoreFormatError(f"{path}: the manifests list {self._part_clouds[-1]} clouds and {self._part_points[-1]} "
                                   f"points, the root metadata {meta.num_clouds} and {meta.num_points}")
        self._cache: OrderedDict[int, _Fragment] = OrderedDict()

    def __repr__(self) -> str:
        return (f"<Store {str(self.path)!r} kind={self.kind} clouds={self.num_clouds} points={self.num_points} "
                f"features={list(self.point_features)}>")

    # -- fragments, loaded on demand -----------------------------------------------------------------
    def _part(self, p: int) -> _Part:
        part = self._parts.get(p)
        if part is None:
            infos = read_index_part(self.path, self.meta.generation, self._index[p])
            part = self._parts[p] = _Part(infos, int(self._part_clouds[p]), int(self._part_points[p]))
        return part

    @property
    def num_fragments(self) -> int:
        return int(self._part_frags[-1])

    def _info(self, k: int) -> FragmentInfo:
        p = int(np.searchsorted(self._part_frags, k, side="right") - 1)
        return self._part(p).infos[k - int(self._part_frags[p])]

    @cached_property
    def _cache_limit(self) -> int:
        per_cloud = 8 + sum(np.dtype(f.dtype).itemsize for f in self.meta.cloud_features)  # offsets + fields
        per_fragment = per_cloud * self.num_clouds / max(1, self.meta.num_fragments)
        return int(max(16, min(_CACHED_FRAGMENTS, _CACHE_BYTES // max(per_fragment, 1))))

    def _fragment(self, k: int) -> _Fragment:
        frag = self._cache.get(k)
        if frag is None:
            # A str root: os.path.join on a Path costs more than the rest of a fragment's set-up.
            frag = _FragmentV1(self.path, self._info(k)) if self._v1 else _Fragment(self._root, self.meta, self._info(k))
            self._cache[k] = frag
            if len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return frag

    def _locate(self, idx: np.ndarray, *, points: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Fragment (global number) and local position of sorted global cloud (or, with ``points``,
        point) indices."""
        part_bounds = self._part_points if points else self._part_clouds
        p_of = np.searchsorted(part_bounds, idx, side="right") - 1
        frag, local = np.empty_like(idx), np.empty_like(idx)
        for p in np.unique(p_of):
            sel = p_of == p
            part = self._part(int(p))
            starts = part.point_starts if points else part.starts
            j = np.searchsorted(starts, idx[sel], side="right") - 1
            frag[sel], local[sel] = j + self._part_frags[p], idx[sel] - starts[j]
        return frag, local

    def _all_parts(self) -> list[_Part]:
        return [self._part(p) for p in range(len(self._part_frags) - 1)]

    @cached_property
    def fragments(self) -> tuple[FragmentInfo, ...]:
        """Every committed fragment (reads every index manifest)."""
        return tuple(f for part in self._all_parts() for f in part.infos)

    def _point_base(self, k: int) -> int:
        """First global point row of fragment ``k``."""
        p = int(np.searchsorted(self._part_frags, k, side="right") - 1)
        return int(self._part(p).point_starts[k - int(self._part_frags[p])])

    @cached_property
    def fragment_starts(self) -> np.ndarray:
        """First global cloud of each fragment, then ``num_clouds``: ``[num_fragments + 1]``."""
        return np.concatenate([[0], np.cumsum([f.num_clouds for f in self.fragments])]).astype(np.int64)

    @cached_property
    def max_points(self) -> int:
        """Points of the store's longest cloud (from the manifests; a fragment's offsets where they lack it)."""
        longest = 0
        for k, info in enumerate(self.fragments):
            if info.num_clouds:
                longest = max(longest, info.max_points if info.max_points >= 0
                              else int(np.diff(self._fragment(k).offsets).max()))
        return longest

    def _by_fragment(self, idx: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(fragment, positions in ``idx``, local indices) for the fragments that global ``idx`` touch."""
        frag_of = np.searchsorted(self.fragment_starts, idx, side="right") - 1
        # (any sort: a group's positions and local indices are taken together)
        order = np.argsort(frag_of, kind="stable")  # pragma: no mutate
        bounds = np.flatnonzero(np.diff(frag_of[order])) + 1
        for group in np.split(order, bounds) if len(idx) else ():
            k = int(frag_of[group[0]])
            yield k, group, idx[group] - self.fragment_starts[k]

    def point_ranges(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global first point row and point count of each cloud in ``indices`` (any order), reading
        only the offsets of the fragments they lie in: ``(starts, counts)``, int64 ``[n]`` each."""
        idx = np.asarray(indices, dtype=np.int64)
        starts, counts = np.empty(len(idx), np.int64), np.empty(len(idx), np.int64)
        for k, where, local in self._by_fragment(idx):
            off = self._fragment(k).offsets
            starts[where] = off[local] + self.point_starts[k]
            counts[where] = off[local + 1] - off[local]
        return starts, counts

    def fields_of(self, indices: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Cloud fields of ``indices`` (any order) as a float32 ``[n, len(names)]`` table."""
        self._check_fields(names)
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), len(names)), np.float32)
        for k, where, local in self._by_fragment(idx):
            frag = self._fragment(k)
            for j, name in enumerate(names):
                out[where, j] = frag.field(name)[local]
        return out

    # -- description -----------------------------------------------------------------------------
    kind = property(lambda self: self.meta.kind)
    coords = property(lambda self: self.meta.coords)
    num_clouds = property(lambda self: self.meta.num_clouds)
    num_points = property(lambda self: self.meta.num_points)
    point_features = property(lambda self: self.meta.point_feature_names)
    cloud_features = property(lambda self: self.meta.cloud_feature_names)

    @property
    def stats(self) -> dict[str, FeatureStats]:
        return self.meta.stats

    @property
    def complete(self) -> bool:
        return self.meta.status == "complete"

    def __len__(self) -> int:
        return self.num_clouds

    @cached_property
    def offsets(self) -> np.ndarray:
        """Global offsets ``[num_clouds + 1]`` into the concatenation of all fragments' points."""
        out = np.zeros(self.num_clouds + 1, dtype=np.int64)
        base = 0
        for k, lo in enumerate(self.fragment_starts[:-1]):
            frag = self._fragment(k)
            n = frag.info.num_clouds
            out[lo + 1 : lo + n + 1] = frag.offsets[1:] + base
            base += frag.info.num_points
        return out

    @property
    def counts(self) -> np.ndarray:
        """Points per cloud, ``[num_clouds]``."""
        return np.diff(self.offsets)

    def field(self, name: str) -> np.ndarray:
        """One cloud field over the whole store, ``[num_clouds]``."""
        self._check_fields([name])
        if not self.num_fragments:
            return self._no_values(name)
        return np.concatenate([self._fragment(k).field(name) for k in range(self.num_fragments)])

    # -- reading ---------------------------------------------------------------------------------
    def _no_values(self, name: str) -> np.ndarray:
        """Cloud field ``name`` of no clouds, in its stored dtype (as a read of some clouds gives it)."""
        return np.zeros(0, next(f.dtype for f in self.meta.cloud_features if f.name == name))

    def _check_fields(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.cloud_features]
        if unknown:
            raise KeyError(f"{self.path}: no cloud field {unknown[0]!r} (has {', '.join(self.cloud_features)})")

    def take(self, indices: Sequence[int] | np.ndarray, *, fields: Sequence[str] | None = None) -> Clouds:
        """Clouds at global ``indices`` in the given order, reading only the chunks that hold them."""
        idx = np.asarray(indices, dtype=np.int64)  # (int8 indices of -1 and up would overflow below)
        idx = idx.reshape(-1)  # pragma: no mutate (numpy reads any negative size, and None, as -1)
        names = list(self.cloud_features if fields is None else fields)
        self._check_fields(names)
        if idx.size and (idx.min() < -self.num_clouds or idx.max() >= self.num_clouds):
            raise IndexError(f"cloud index out of range for a store of {self.num_clouds} clouds")
        idx = np.where(idx < 0, idx + self.num_clouds, idx)
        # Ranges, splits and exports ask in ascending order: then no reordering gather at the end.
        ascending = bool((idx[1:] >= idx[:-1]).all())
        if not ascending:
            order = np.argsort(idx, kind="stable")  # pragma: no mutate (equal indices are the same cloud)
            idx = idx[order]
        frag_of, local = self._locate(idx)
        parts = []
        for k in np.unique(frag_of):
            sel = local[frag_of == k]
            uniq, inverse = np.unique(sel, return_inverse=True)
            part = self._fragment(int(k)).gather(uniq, names, self.point_features)
            parts.append(part.take(inverse) if len(uniq) != len(sel) else part)
        if not parts:
            return Clouds(np.zeros((0, len(self.point_features)), np.float32), np.zeros(1, np.int64),
                          {n: self._no_values(n) for n in names}, self.point_features)
        gathered = Clouds.concat(parts)
        if ascending:
            return gathered
        inverse_order = np.empty_like(order)
        inverse_order[order] = np.arange(len(order))
        return gathered.take(inverse_order)

    def read(self, start: int = 0, stop: int | None = None, *, fields: Sequence[str] | None = None) -> Clouds:
        """Clouds ``start:stop`` (contiguous range), reading only the chunks that hold them."""
        start, stop, _ = slice(start, stop).indices(self.num_clouds)
        return self.take(np.arange(start, max(start, stop)), fields=fields)

    def cloud(self, i: int) -> dict[str, np.ndarray]:
        """One cloud: ``{"points": [n, F], <field>: value, ...}``."""
        return self.take([i]).cloud(0)

    def __getitem__(self, key: int | slice):
        if isinstance(key, slice):
            if key.step not in (None, 1):
                return self.take(np.arange(self.num_clouds)[key])
            return self.read(key.start or 0, key.stop)
        return self.cloud(int(key))

    # -- access for streaming loaders ------------------------------------------------------------
    @cached_property
    def point_starts(self) -> np.ndarray:
        """First global point row of each fragment, then ``num_points``: ``[num_fragments + 1]``."""
        return np.concatenate([[0], np.cumsum([f.num_points for f in self.fragments])]).astype(np.int64)

    def map_points(self) -> tuple[np.ndarray, np.ndarray, MappedRows] | None:
        """Every point, served by the page cache without decoding, for stores of raw chunks.

        Returns ``(rows, shift, mapping)``: a read-only float32 ``[R, F]`` array mapped from the
        chunk files, and per fragment what to add to a global point row (:meth:`point_ranges`) to
        get its row in ``rows``; the mapping lives as long as ``rows`` does (``mapping.close()``
        ends it at once). None when the store's chunks are compressed (or in a layout read through
        zarr), or off Linux.

        Raises:
            StoreFormatError: a chunk file of the wrong size.
        """
        if is_url(self._root):  # nothing to map: the chunks are on a server
            return None
        arrays = [self._fragment(k)._points_chunks for k in range(self.num_fragments)]
        if not arrays or any(a is None for a in arrays):
            return None
        mapped = map_rows(arrays)
        if mapped is None:
            return None
        return mapped.rows, mapped.first - self.point_starts[:-1], mapped

    def read_points(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the concatenation of all fragments' points, float32 ``[n, F]``.

        One contiguous read per fragment touched (the loaders read chunk-aligned blocks this way,
        without the index bookkeeping of :meth:`take`), decoded into ``out`` when given: a
        reused buffer avoids first touches of fresh pages, which cost more than the decoding.
        """
        start, stop = max(0, int(start)), min(int(stop), self.num_points)
        n, width = max(0, stop - start), len(self.point_features)
        if out is None:
            out = np.empty((n, width), dtype=np.float32)
        elif out.shape != (n, width) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 {(n, width)}, got {out.dtype} {out.shape}")
        if n == 0:
            return out
        first, _ = self._locate(np.array([start]), points=True)
        k, row = int(first[0]), start
        while row < stop:
            frag = self._fragment(k)
            lo = row - self._point_base(k)
            b = min(stop, row + frag.info.num_points - lo)
            if b > row:  # pragma: no mutate (>=: an empty fragment's read of no rows reads nothing)
                frag.read_points(lo, lo + b - row, out[row - start : b - start])
            row, k = b, k + 1
        return out

    def iter_fragments(self) -> Iterator[Clouds]:
        """Every committed fragment as :class:`Clouds`, in order."""
        for k in range(self.num_fragments):
            frag = self._fragment(k)
            yield frag.gather(np.arange(frag.info.num_clouds), self.cloud_features, self.point_features)

    # -- splits ------------------------------------------------------------------------------------
    @cached_property
    def _split_indices(self) -> dict[str, np.ndarray]:
        return split_indices(self.num_clouds, self.meta.splits)

    @cached_property
    def _split_cuts(self) -> dict[str, tuple[int, int]]:
        return split_cuts(self.num_clouds, self.meta.splits)

    def _check_split(self, name: str) -> None:
        if name not in self.meta.splits.names:
            raise SplitNotFoundError(f"{self.path}: no split {name!r} (has {', '.join(self.meta.splits.names)})")

    def split_indices(self, name: str) -> np.ndarray:
        """Sorted global indices of the clouds of split ``name`` (O(clouds of the store) to compute)."""
        self._check_split(name)
        return self._split_indices[name]

    def in_split(self, indices: np.ndarray, name: str) -> np.ndarray:
        """Which of the clouds ``indices`` are in split ``name``, decided per cloud (no list of the split)."""
        self._check_split(name)
        return split_member(indices, self.meta.splits.seed, self._split_cuts[name])  # (split_keys casts to int64)

    def indices(self, split: str | None = None) -> np.ndarray:
        """Sorted global indices of the clouds of ``split``, or of every cloud (None)."""
        if split is None:
            return np.arange(self.num_clouds, dtype=np.int64)  # pragma: no mutate (numpy 2's default int is int64)
        return self.split_indices(split)

    def split(self, name: str) -> Clouds:
        """The clouds of split ``name``."""
        return self.take(self.split_indices(name))

    def _select(self, split: str | None) -> Clouds:
        return self.read() if split is None else self.split(split)

    # -- views --------------------------------------------------------------------------------------
    def to_numpy(self, *, pad: int | None = None, split: str | None = None) -> Padded:
        """Padded ``[B, N, F]`` points with a mask (N = ``pad`` or the longest cloud)."""
        return self._select(split).padded(pad)

    def to_awkward(self, *, split: str | None = None):
        """An awkward array of ``{points: var * {features}, <fields>}`` records."""
        return self._select(split).to_awkward()

    def to_arrow(self, *, split: str | None = None):
        """A ``pyarrow.Table`` with one LargeList column per point feature and the cloud fields."""
        return self._select(split).to_arrow()

    def iter_arrow_batches(self, batch_size: int = 65536, *, split: str | None = None):
        """``pyarrow.RecordBatch`` es of at most ``batch_size`` clouds, streamed from the store."""
        idx = self.indices(split)
        for lo in range(0, len(idx), batch_size):
            table = self.take(idx[lo : lo + batch_size]).to_arrow()
            yield from table.to_batches()

    def describe(self) -> dict:
        """A JSON-ready summary: format, kind, counts, features, splits with sizes, statistics."""
        from .splits import split_sizes

        m = self.meta
        sizes = split_sizes(self.num_clouds, m.splits)
        counts = self.counts
        return {
            "path": str(self.path),
            "format": m.format,
            "version": m.version,
            "kind": m.kind,
            "coords": m.coords,
            "status": m.status,
            "num_clouds": self.num_clouds,
            "num_points": self.num_points,
            "points_per_cloud": {"mean": float(counts.mean()) if len(counts) else None,
                                 "max": int(counts.max()) if len(counts) else None},
            "point_features": [f.to_dict() for f in m.point_features],
            "cloud_features": [f.to_dict() for f in m.cloud_features],
            "splits": {"seed": m.splits.seed, "method": m.splits.method,
                       **{n: {"fraction": f, "count": sizes[n]} for n, f in m.splits.fractions}},
            "stats": {k: v.to_dict() for k, v in m.stats.items()},
            "num_fragments": m.num_fragments,
            "provenance": m.provenance.to_dict(),
            "attrs": m.attrs,
        }

    # -- integrity -------------------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Re-read every fragment and compare with its committed checksum and counts.

        Returns:
            One line per problem found; empty when the store is intact.
        """
        problems = []
        for k in range(self.num_fragments):
            info = self._info(k)  # a damaged manifest raises: nothing after it can be checked
            try:
                clouds = self._fragment(k).gather(np.arange(info.num_clouds), self.cloud_features, self.point_features)
            except Exception as err:  # damaged chunks surface as StoreFormatError, codec or zarr errors
                problems.append(f"fragment {info.id}: unreadable ({str(err).splitlines()[0]})")
                continue
            if len(clouds) != info.num_clouds or clouds.num_points != info.num_points:
                problems.append(f"fragment {info.id}: counts differ from the metadata")
            elif content_checksum(clouds) != info.checksum:
                problems.append(f"fragment {info.id}: checksum mismatch")
        return problems
