"""Writing a store (format 2): fragments on the workers, manifests and the root on the client.

Protocol (README.md beside this file has the whole of it):

1. :func:`prepare_store` takes the store's lock and creates the store (atomically, through a
   hidden sibling), or resumes an interrupted build of the same inputs, or starts a replacement
   build in a new generation beside a complete store, which stays readable meanwhile.
2. Workers call a :class:`FragmentWriter` (picklable): a fragment group is written under a
   temporary name and renamed into ``fragments/<generation>/d<fan>/<id>``.
3. The client calls :meth:`StoreBuilder.commit` for each batch of finished fragments: one log
   manifest, then one rewrite of the small root. The cost is the batch's, not the store's.
4. :meth:`StoreBuilder.finish` merges the statistics (in fragment order), writes the index
   manifests and marks the store complete in one atomic root rewrite, which is also the switch
   from an old generation to the new one; then it removes the old generation and the logs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_posix_path, check_writable_parent, fsync_dir, remove_tree, write_json_atomic
from ..clouds import Clouds
from ..errors import StoreExistsError, StoreFormatError
from .format import ChunkSpec, Feature, FragmentInfo, Manifests, Moments, StoreMeta, fragment_id
from .lock import LOCK_NAME, StoreLock
from .metadata import Root, fragment_dir, group_document, log_path, read_logs, read_root, write_index, write_log, write_root
from .shards import write_array

__all__ = [
    "ChunkSpec",
    "JET_CHUNKS",
    "fragment_id",
    "content_checksum",
    "FragmentWriter",
    "StoreBuilder",
    "completed_store",
    "prepare_store",
    "write_store",
]

# Jets' float features hardly compress (lz4: 0.93 of raw on Pythia top jets) while raw chunks are
# mapped from the page cache by the loader, at the speed of an in-memory tensor (compressed: decoded
# every epoch). Jet stores default to raw chunks; showers (integer cells: 0.64) keep lz4.
JET_CHUNKS = ChunkSpec(cname="none")


def content_checksum(clouds: Clouds) -> str:
    """sha256 of a fragment's decoded content (independent of chunking, compression and format)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(clouds.points, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(clouds.offsets, dtype="<i8").tobytes())
    for name, values in clouds.fields.items():
        v = np.ascontiguousarray(values)
        h.update(f"{name}:{v.dtype.str}".encode())
        h.update(v.tobytes())
    return "sha256:" + h.hexdigest()


def fragment_moments(clouds: Clouds, point_features: tuple[str, ...]) -> dict[str, Moments]:
    """Partial statistics of every point feature and cloud field of one fragment."""
    out = {name: Moments.of(clouds.points[:, j]) for j, name in enumerate(point_features)}
    out.update({name: Moments.of(v) for name, v in clouds.fields.items()})
    return out


def _ensure_group(path: Path) -> None:
    """A group directory with its ``zarr.json`` (several workers may race here: both write the same)."""
    if not (path / "zarr.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path / "zarr.json", group_document())


@dataclass(frozen=True)
class FragmentWriter:
    """Writes fragments of one build (picklable: what a Dask task carries to a worker)."""

    store: str
    generation: str
    layout: ChunkSpec
    point_features: tuple[Feature, ...]
    cloud_features: tuple[Feature, ...]
    fsync: bool = True

    def _write_group(self, path: Path, fid: str, clouds: Clouds) -> None:
        spec = self.layout
        path.mkdir()
        # Plain writes: the directory is renamed into place whole, so no file in it needs its own rename.
        (path / "zarr.json").write_text(json.dumps(group_document(
            {"pcdata": {"fragment": fid, "num_clouds": len(clouds), "num_points": clouds.num_points}})))
        feats = self.point_features
        write_array(path / "points", clouds.points, spec.points_rows, spec, ("point", "feature"),
                    {"feature_names": [f.name for f in feats], "units": [f.unit for f in feats],
                     "descriptions": [f.description for f in feats]}, fsync=self.fsync)
        write_array(path / "offsets", clouds.offsets, spec.clouds, spec, ("cloud_edge",),
                    {"description": "points of cloud i are rows offsets[i]:offsets[i+1] of points"}, fsync=self.fsync)
        (path / "cloud").mkdir()
        (path / "cloud" / "zarr.json").write_text(json.dumps(group_document()))
        for f in self.cloud_features:
            values = clouds.fields[f.name]
            name = f.name
            write_array(path / "cloud" / name, values, spec.clouds, spec, ("cloud",),
                        {"units": f.unit, "description": f.description}, fsync=self.fsync)

    def write(self, fragment: str, clouds: Clouds, *, source: dict[str, Any] | None = None) -> FragmentInfo:
        """Write one complete fragment and return what the manifests must list.

        The group is written under a temporary name and renamed into place, so the fragment's
        directory is always complete. If it already exists, an earlier attempt of this same task
        (Dask may run a task twice when a worker dies) finished it first; the content is
        deterministic, so that copy is kept.
        """
        names = tuple(f.name for f in self.point_features)
        if clouds.point_features != names:
            raise ValueError(f"fragment {fragment}: point features {clouds.point_features}, the store has {names}")
        declared = {f.name: np.dtype(f.dtype) for f in self.cloud_features}
        if set(clouds.fields) != set(declared):
            raise ValueError(f"fragment {fragment}: cloud fields {list(clouds.fields)}, the store has {list(declared)}")
        for name, values in clouds.fields.items():
            # Readers decode each field with the dtype the metadata declares: it must be the truth.
            if values.dtype != declared[name]:
                raise ValueError(f"fragment {fragment}: cloud field {name!r} is {values.dtype}, the store declares {declared[name]}")
        if clouds.points.dtype != np.float32:
            clouds = Clouds(clouds.points.astype(np.float32), clouds.offsets, clouds.fields, clouds.point_features)
        final = Path(fragment_dir(self.store, self.generation, fragment))
        _ensure_group(final.parent)
        tmp = final.parent / f".{fragment}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            self._write_group(tmp, fragment, clouds)
            try:
                os.rename(tmp, final)
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                    raise
                remove_tree(tmp)
            if self.fsync:
                fsync_dir(final.parent)
        except BaseException:
            remove_tree(tmp)
            raise
        return FragmentInfo(
            id=fragment,
            num_clouds=len(clouds),
            num_points=clouds.num_points,
            checksum=content_checksum(clouds),
            source=dict(source or {}),
            moments=fragment_moments(clouds, clouds.point_features),
            max_points=int(clouds.counts.max(initial=0)),
        )

    __call__ = write


# -- the build ----------------------------------------------------------------------------------------


def _new_generation() -> str:
    return "g" + uuid.uuid4().hex[:12]


class StoreBuilder:
    """The single writer of a store's manifests and root during a build; holds the store's lock.

    Attributes:
        target, path: the store directory (the same: a build never moves the store).
        meta: the build's metadata as last committed.
        resumed: True when an interrupted build was found and is being continued.
        replacing: the root document of the complete store this build will replace, or None.
    """

    def __init__(self, target: Path, meta: StoreMeta, lock: StoreLock, *, resumed: bool,
                 replacing: dict | None = None, infos: list[FragmentInfo] = ()):
        self.target = self.path = target
        self.meta, self.lock, self.resumed, self.replacing = meta, lock, resumed, replacing
        self._infos: dict[str, FragmentInfo] = {}
        names = [*meta.point_feature_names, *meta.cloud_feature_names]
        self._merged = {name: Moments() for name in names}
        self._waiting: dict[int, dict[str, Moments]] = {}
        self._next = 0
        for info in infos:
            self._add(info)

    @property
    def generation(self) -> str:
        return self.meta.generation

    @property
    def committed(self) -> set[str]:
        return set(self._infos)

    def writer(self, *, fsync: bool = True) -> FragmentWriter:
        """The fragment writer of this build (give it to the workers); ``fsync=False`` leaves the
        fragments' data to the page cache (see :func:`pcdata.ingest.pipeline.run_ingest`)."""
        m = self.meta
        return FragmentWriter(str(self.path), m.generation, m.layout, m.point_features, m.cloud_features, fsync)

    def _add(self, info: FragmentInfo) -> None:
        # Statistics are merged in fragment order as soon as a prefix is complete, so the result
        # does not depend on scheduling and the builder keeps only the out-of-order moments.
        self._check_planned(info)
        self._infos[info.id] = replace(info, moments={})
        self._waiting[info.index] = info.moments
        while self._next in self._waiting:
            moments = self._waiting.pop(self._next)
            for name in self._merged:
                self._merged[name] = self._merged[name].merge(moments.get(name, Moments()))
            self._next += 1

    def _check_planned(self, info: FragmentInfo) -> None:
        if not 0 <= info.index < self.meta.expected_fragments:
            raise StoreFormatError(f"{self.path}: fragment {info.id} is outside the planned {self.meta.expected_fragments}")

    def _write_root(self, meta: StoreMeta) -> None:
        if self.replacing is None:
            write_root(self.path, meta)
        else:
            write_root(self.path, self.replacing, build=meta)

    def commit(self, *infos: FragmentInfo) -> None:
        """Commit finished fragments: one log manifest, then one rewrite of the small root."""
        new = []
        for info in infos:
            old = self._infos.get(info.id)
            if old is not None and old.checksum != info.checksum:
                raise StoreFormatError(f"{self.path}: fragment {info.id} committed twice with different content")
            if old is None and info.id not in {i.id for i in new}:
                self._check_planned(info)  # before anything is written: a refused fragment is never listed
                new.append(info)
        if not new:
            return
        seq = self.meta.manifests.log
        write_log(self.path, self.generation, seq, new)
        meta = replace(self.meta, manifests=Manifests(log=seq + 1),
                       num_fragments=self.meta.num_fragments + len(new),
                       num_clouds=self.meta.num_clouds + sum(i.num_clouds for i in new),
                       num_points=self.meta.num_points + sum(i.num_points for i in new))
        self._write_root(meta)
        self.meta = meta
        for info in new:
            self._add(info)

    def finish(self, **updates: Any) -> StoreMeta:
        """Merge statistics, write the index manifests and mark the store complete (one atomic
        root rewrite, which also switches from a replaced store to this one); then clean up."""
        if len(self._infos) != self.meta.expected_fragments:
            raise RuntimeError(
                f"{self.target}: {len(self._infos)} of {self.meta.expected_fragments} fragments committed"
            )
        infos = [self._infos[k] for k in sorted(self._infos)]
        parts = write_index(self.path, self.generation, infos)
        meta = replace(self.meta, status="complete", manifests=Manifests(index=parts),
                       stats={k: m.to_stats() for k, m in self._merged.items()}, **updates)
        write_root(self.path, meta)
        self.meta, self.replacing = meta, None
        _drop_other_generations(self.path, {self.generation})
        _drop_fragment_temporaries(self.path, self.generation)
        for log in (self.path / "manifests" / self.generation).glob("log-*"):
            remove_tree(log)
        self.close()
        return meta

    def abort(self) -> None:
        """Remove what this build wrote (used when the input turns out to be bad): the whole store
        when there was none before, the new generation when it was replacing one."""
        if self.replacing is not None:
            write_root(self.path, self.replacing)
            _drop_other_generations(self.path, _generations_of(read_root(self.path)))
            self.close()
        else:
            remove_tree(self.path)

    def close(self) -> None:
        """Give up the lock (finish and abort do; call it when a build stops any other way)."""
        self.lock.release()

    def __enter__(self) -> "StoreBuilder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- preparing a build ----------------------------------------------------------------------------


def _generations_of(root: Root | None) -> set[str]:
    """Names under ``fragments/`` (and ``manifests/``) that the root refers to."""
    if root is None:
        return set()
    keep = {f.id for f in root.v1_fragments} if root.v1_fragments is not None else {root.meta.generation}
    if root.build is not None:
        keep.add(root.build.generation)
    return keep


def _drop_other_generations(path: Path, keep: set[str]) -> None:
    for sub in ("fragments", "manifests"):
        directory = path / sub
        if directory.is_dir():
            for child in directory.iterdir():
                if child.name != "zarr.json" and child.name not in keep:
                    remove_tree(child)


def _drop_uncommitted(path: Path, meta: StoreMeta, committed: set[str]) -> None:
    """Remove what an interrupted build wrote but never committed: fragment directories (and
    temporary ones of killed workers), log manifests the root does not name, temporary files."""
    gen_dir = path / "fragments" / meta.generation
    if gen_dir.is_dir():
        for fan in gen_dir.iterdir():
            if fan.is_dir():
                for child in fan.iterdir():
                    if child.name != "zarr.json" and child.name not in committed:
                        remove_tree(child)
    logs = path / "manifests" / meta.generation
    named = {log_path(path, meta.generation, s).name for s in range(meta.manifests.log)}
    if logs.is_dir():
        for child in logs.iterdir():
            if child.name not in named:
                remove_tree(child)


def _drop_temporaries(path: Path) -> None:
    """Metadata rewrites killed before their rename (``.zarr.json.tmp-*``, ``.<manifest>.tmp-*``)
    in the store's root and its group directories, and fragment directories killed before theirs
    (``.f*.tmp-*``) in any fan-out directory. Called with the lock held: the client that wrote
    them is gone, and only the lock holder's build writes here."""
    levels = [path]
    for sub in ("fragments", "manifests"):
        top = path / sub
        levels.append(top)
        if top.is_dir():
            for gen in top.iterdir():
                if gen.is_dir() and not gen.name.startswith("."):
                    levels.append(gen)
                    levels.extend(fan for fan in gen.iterdir() if fan.is_dir() and not fan.name.startswith("."))
    for level in levels:
        if level.is_dir():
            for child in level.iterdir():
                if child.name.startswith(".") and ".tmp-" in child.name:
                    remove_tree(child)


def _drop_fragment_temporaries(path: Path, generation: str) -> None:
    """Half-written fragments of attempts that died (a worker killed mid-fragment): once every
    fragment is committed no task of this build is left to finish them."""
    root = path / "fragments" / generation
    for fan in root.iterdir() if root.is_dir() else ():
        if fan.is_dir():
            for child in fan.iterdir():
                if child.name.startswith(".") and ".tmp-" in child.name:
                    remove_tree(child)


def _init_generation(path: Path, generation: str) -> None:
    _ensure_group(path / "fragments")
    (path / "fragments" / generation).mkdir(exist_ok=True)
    write_json_atomic(path / "fragments" / generation / "zarr.json", group_document())
    (path / "manifests" / generation).mkdir(parents=True, exist_ok=True)


def _fresh(template: StoreMeta) -> StoreMeta:
    return replace(template, status="incomplete", generation=_new_generation(), num_fragments=0, num_clouds=0,
                   num_points=0, manifests=Manifests(), stats={})


def _creating(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.pcdata-new-*")) if target.parent.is_dir() else []


def _clean_creations(target: Path) -> None:
    """Remove hidden siblings left by creations that were killed before their rename."""
    for tmp in _creating(target):
        holder = StoreLock.holder(tmp)
        stale = StoreLock._stale(holder) if holder else time.time() - tmp.stat().st_mtime > 60
        if stale:
            remove_tree(tmp)


def _create(target: Path, template: StoreMeta, command: str) -> StoreBuilder | None:
    """Create the store in a hidden sibling, locked, and rename it onto ``target``; None when
    another process created ``target`` first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.pcdata-new-{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        lock = StoreLock.create(tmp, command)
        meta = _fresh(template)
        _init_generation(tmp, meta.generation)
        write_root(tmp, meta)
        try:
            os.rename(tmp, target)  # onto nothing or an empty directory: atomic
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                remove_tree(tmp)
                return None
            raise
    except BaseException:
        remove_tree(tmp)
        raise
    return StoreBuilder(target, meta, StoreLock(target / LOCK_NAME, lock.token), resumed=False)


def completed_store(target: str | os.PathLike, fingerprint: str) -> StoreMeta | None:
    """The metadata of the complete store at ``target`` if it was built from the inputs and
    options ``fingerprint`` names (a re-run of a finished ingest has nothing to do), else None.
    Read without the lock: a complete root is only ever replaced whole, by an atomic rename."""
    target = Path(target)
    if not fingerprint or not (target / "zarr.json").is_file():
        return None
    try:
        root = read_root(target)
    except StoreFormatError:
        return None  # prepare_store reports a damaged root with its reason
    if root is None or root.v1_fragments is not None or root.build is not None:
        return None
    meta = root.meta
    return meta if meta.status == "complete" and meta.fingerprint == fingerprint else None


def prepare_store(target: str | os.PathLike, template: StoreMeta, *, overwrite: bool = False,
                  command: str | None = None) -> StoreBuilder:
    """Take the store's lock and create it, resume the interrupted build of the same inputs, or
    start a replacement build.

    Args:
        target: the store path.
        template: metadata of the store to build (status, generation, counts and manifests are
            ignored); ``layout`` is how fragments will be chunked; ``fingerprint`` identifies
            the inputs and options, so a re-run of the same command resumes and a different one
            does not silently mix with an old build.
        overwrite: replace an existing store. A complete store stays readable, unchanged, until
            the new one is finished; one atomic root rewrite then switches to it.
        command: recorded in the lock file, to name the holder to a second writer.

    Raises:
        StoreExistsError: the path holds a complete store (without ``overwrite``), an interrupted
            build of other inputs (without ``overwrite``), or something that is not a store.
        StoreLockedError: another live process is writing the store.
    """
    check_posix_path(target)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)  # a store's missing parents are made, as ``mkdir -p``
    check_writable_parent(target)  # before any temporary name beside it is made
    command = command if command is not None else " ".join(sys.argv)
    _clean_creations(target)
    for _ in range(3):
        if not target.exists() or (target.is_dir() and not any(target.iterdir())):
            builder = _create(target, template, command)
            if builder is not None:
                return builder
            continue
        break
    if not target.is_dir() or read_root(target) is None:
        raise StoreExistsError(f"{target}: exists and is not a pcdata store; refusing to write there")
    lock = StoreLock.create(target, command)
    try:
        return _prepare_locked(target, template, overwrite, lock)
    except BaseException:
        lock.release()
        raise


def _prepare_locked(target: Path, template: StoreMeta, overwrite: bool, lock: StoreLock) -> StoreBuilder:
    _drop_temporaries(target)
    root = read_root(target)  # again: it may have changed before the lock was ours
    if root is None:
        raise StoreExistsError(f"{target}: exists and is not a pcdata store; refusing to write there")
    meta, v1 = root.meta, root.v1_fragments is not None
    if meta.status == "incomplete":
        if not v1 and meta.fingerprint == template.fingerprint:
            return _resume(target, meta, lock, replacing=None)
        if not overwrite:
            what = "an interrupted ingest written by an older pcdata (format 1)" if v1 else \
                "an interrupted ingest of other inputs or options"
            raise StoreExistsError(f"{target}: holds {what}; remove it or pass --overwrite")
        fresh = _fresh(template)
        _init_generation(target, fresh.generation)
        write_root(target, fresh)
        _drop_other_generations(target, {fresh.generation})
        return StoreBuilder(target, fresh, lock, resumed=False)
    if not overwrite:
        raise StoreExistsError(f"{target}: a store already exists; pass --overwrite to replace it")
    if root.build is not None and root.build.fingerprint == template.fingerprint:
        return _resume(target, root.build, lock, replacing=root.raw)
    build = _fresh(template)
    _init_generation(target, build.generation)
    write_root(target, root.raw, build=build)
    _drop_other_generations(target, _generations_of(read_root(target)))
    return StoreBuilder(target, build, lock, resumed=False, replacing=root.raw)


def _resume(target: Path, meta: StoreMeta, lock: StoreLock, *, replacing: dict | None) -> StoreBuilder:
    infos = read_logs(target, meta)
    keep = {meta.generation}
    if replacing is not None:
        keep |= _generations_of(read_root(target))
    _drop_other_generations(target, keep)
    _drop_uncommitted(target, meta, {i.id for i in infos})
    return StoreBuilder(target, meta, lock, resumed=True, replacing=replacing, infos=infos)


def write_store(
    path: str | os.PathLike,
    clouds: Clouds,
    template: StoreMeta,
    *,
    clouds_per_fragment: int = 100_000,
    chunks: ChunkSpec | None = None,
    overwrite: bool = False,
) -> StoreMeta:
    """Write in-memory clouds as a complete store in this process (no Dask).

    For generated samples and small data; ingests of files go through :mod:`pcdata.ingest`.
    ``chunks`` overrides the template's layout.
    """
    n_fragments = max(1, -(-len(clouds) // clouds_per_fragment))
    template = replace(template, expected_fragments=n_fragments, layout=chunks or template.layout)
    builder = prepare_store(path, template, overwrite=overwrite)
    try:
        writer = builder.writer()
        for i in range(n_fragments):
            fid = fragment_id(i)
            if fid in builder.committed:
                continue
            lo, hi = i * clouds_per_fragment, min(len(clouds), (i + 1) * clouds_per_fragment)
            builder.commit(writer.write(fid, clouds.slice(lo, hi), source={"start": lo, "stop": hi}))
        return builder.finish()
    except BaseException:
        if not builder.resumed:
            builder.abort()
        raise
    finally:
        builder.close()
