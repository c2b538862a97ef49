"""Root metadata and manifest I/O, shared by the reader and the writer (layout in README.md).

The root ``zarr.json`` is small and replaced atomically; it names the generation whose fragments
the store holds and the manifests that list them: numbered log manifests while a build runs, index
manifests (columnar, 4,096 fragments each) once it is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .._io import write_json_atomic
from ..errors import RemoteStoreError, StoreFormatError
from .remote import is_url, join, read_bytes
from .format import FANOUT, MANIFEST_FORMAT, FragmentInfo, ManifestPart, StoreMeta, fragment_index, parse_root

__all__ = ["ROOT_KEY", "BUILD_KEY", "Root", "read_root", "write_root", "fragment_dir", "write_log", "read_logs",
           "write_index", "read_index_part", "INDEX_SIZE"]

ROOT_KEY = "pcdata"
BUILD_KEY = "pcdata_build"
INDEX_SIZE = 4096  # fragments per index manifest


@dataclass(frozen=True)
class Root:
    """A parsed root ``zarr.json``.

    Attributes:
        meta: the store's metadata (the current generation).
        build: a replacement build in progress beside a complete store, or None.
        v1_fragments: the inline fragment list of a format 1 store (None for format 2).
        raw: the root's ``pcdata`` document as read (rewritten verbatim while a replacement builds).
    """

    meta: StoreMeta
    build: StoreMeta | None
    v1_fragments: tuple[FragmentInfo, ...] | None
    raw: dict


def read_root(path: str | os.PathLike) -> Root | None:
    """The root of the store at ``path``, or None when the directory holds no pcdata store (a URL
    without a ``zarr.json`` raises FileNotFoundError)."""
    try:
        doc = json.loads(read_bytes(join(path, "zarr.json")).decode("utf-8"))
    except FileNotFoundError:
        if is_url(path):  # no directories on a server: the caller says "no such store"
            raise
        return None
    except RemoteStoreError:
        raise
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: brackets nested too deep
        raise StoreFormatError(f"{path}: unreadable zarr.json ({err})") from err
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    if not isinstance(attrs, dict) or ROOT_KEY not in attrs:
        return None
    meta, v1 = parse_root(attrs[ROOT_KEY], where=str(path))
    build = None
    if attrs.get(BUILD_KEY) is not None:
        build = StoreMeta.from_dict(attrs[BUILD_KEY], where=f"{path} (build in progress)")
    return Root(meta, build, v1, attrs[ROOT_KEY])


def write_root(path: str | os.PathLike, meta: StoreMeta | dict, build: StoreMeta | None = None) -> None:
    """Atomically replace the root ``zarr.json`` (a Zarr v3 group whose attributes hold the metadata).

    ``meta`` may be a raw document (a format 1 store being replaced keeps its root verbatim)."""
    attrs: dict[str, Any] = {ROOT_KEY: meta if isinstance(meta, dict) else meta.to_dict()}
    if build is not None:
        attrs[BUILD_KEY] = build.to_dict()
    write_json_atomic(Path(path) / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attrs})


def group_document(attrs: dict | None = None) -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": attrs or {}}


def fragment_dir(store: str | os.PathLike, generation: str, fid: str) -> str:
    """Directory of fragment ``fid``: ``fragments/<generation>/d<index // 1000>/<fid>`` (format 1:
    ``fragments/<fid>``, when ``generation`` is empty). A string: readers make one per fragment."""
    if not generation:
        return os.path.join(store, "fragments", fid)
    # Formatted, not os.path.join: readers build 10^5 of these when they map a whole store.
    return f"{os.fspath(store)}/fragments/{generation}/d{fragment_index(fid) // FANOUT:06d}/{fid}"


def _manifest_dir(store: Path, generation: str) -> Path:
    return store / "manifests" / generation


def log_path(store: str | os.PathLike, generation: str, seq: int) -> Path:
    """Log manifest ``seq`` (a string when ``store`` is a URL, read by :mod:`.remote`)."""
    return join(store, "manifests", generation, f"log-{seq:08d}.json")


def write_log(store: str | os.PathLike, generation: str, seq: int, infos: Iterable[FragmentInfo]) -> None:
    """Write log manifest ``seq`` (temporary name, fsync, rename); the root update commits it."""
    path = log_path(store, generation, seq)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"format": MANIFEST_FORMAT, "version": 1, "kind": "log", "generation": generation,
                             "seq": seq, "fragments": [i.to_dict() for i in infos]}, indent=None)


def _load(path: Path | str, where: str) -> dict:
    try:
        doc = json.loads(read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        raise StoreFormatError(f"{where}: missing manifest {path}") from None
    except RemoteStoreError:
        raise
    except (OSError, ValueError, RecursionError) as err:
        raise StoreFormatError(f"{where}: unreadable manifest {path} ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or doc.get("version") != 1:
        raise StoreFormatError(f"{where}: {path} is not a pcdata manifest of version 1")
    return doc


def read_logs(store: str | os.PathLike, meta: StoreMeta) -> list[FragmentInfo]:
    """Every fragment the committed log manifests list, sorted by id."""
    where, out = str(store), {}
    for seq in range(meta.manifests.log):
        path = log_path(store, meta.generation, seq)
        doc = _load(path, where)
        if doc.get("generation") != meta.generation or doc.get("seq") != seq:
            raise StoreFormatError(f"{where}: manifest {path} belongs to another build")
        for i, f in enumerate(doc.get("fragments", [])):
            info = FragmentInfo.from_dict(f, f"{path}: fragments[{i}]")
            out[info.id] = info
    return [out[k] for k in sorted(out)]


def write_index(store: str | os.PathLike, generation: str, infos: list[FragmentInfo]) -> tuple[ManifestPart, ...]:
    """Write the index manifests of a completed build (``INDEX_SIZE`` fragments each, id order)."""
    store, parts = Path(store), []
    directory = _manifest_dir(store, generation)
    directory.mkdir(parents=True, exist_ok=True)
    for n, lo in enumerate(range(0, len(infos), INDEX_SIZE)):
        chunk = infos[lo : lo + INDEX_SIZE]
        path = directory / f"index-{n:08d}.json"
        write_json_atomic(path, {
            "format": MANIFEST_FORMAT, "version": 1, "kind": "index", "generation": generation,
            "ids": [i.id for i in chunk], "num_clouds": [i.num_clouds for i in chunk],
            "num_points": [i.num_points for i in chunk], "checksums": [i.checksum for i in chunk],
            "sources": [i.source for i in chunk], "max_points": [i.max_points for i in chunk],
        }, indent=None)
        parts.append(ManifestPart(str(path.relative_to(store)), len(chunk), sum(i.num_clouds for i in chunk),
                                  sum(i.num_points for i in chunk)))
    return tuple(parts)


def read_index_part(store: str | os.PathLike, generation: str, part: ManifestPart) -> list[FragmentInfo]:
    """The fragments one index manifest lists, checked against what the root says of it."""
    where = str(store)
    path = join(store, *part.path.split("/"))
    doc = _load(path, where)
    try:
        ids, clouds, points, sums, sources = (doc[k] for k in ("ids", "num_clouds", "num_points", "checksums", "sources"))
        longest = doc.get("max_points", [-1] * len(ids))  # not in manifests written before it was recorded
        infos = [FragmentInfo(str(a), int(b), int(c), str(d), dict(e), max_points=int(f))
                 for a, b, c, d, e, f in zip(ids, clouds, points, sums, sources, longest, strict=True)]
        for info in infos:
            fragment_index(info.id)  # a StoreFormatError, caught below to name the manifest
            if info.num_clouds < 0 or info.num_points < 0:
                raise ValueError(f"fragment {info.id} has negative counts")
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise StoreFormatError(f"{where}: damaged manifest {path} ({err})") from None
    if (doc.get("generation") != generation or len(infos) != part.fragments
            or sum(i.num_clouds for i in infos) != part.clouds or sum(i.num_points for i in infos) != part.points):
        raise StoreFormatError(f"{where}: manifest {path} does not match the root metadata")
    return infos
