"""File-system helpers shared by every writer: atomic files and directories, checksums."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

__all__ = ["URL_RE", "is_url", "read_yaml_mapping", "atomic_path", "check_posix_path", "check_writable_parent", "fsync_dir", "write_json_atomic", "file_digest", "file_sha256", "remove_tree", "temp_sibling"]


def temp_sibling(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """A unique name beside ``path``, on the same file system, so a rename onto ``path`` is atomic."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers see either the old file or the complete new one, never a half-written one; on any
    exception (KeyboardInterrupt included) the temporary file or directory is removed.
    """
    target = Path(path)
    check_writable_parent(target)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(target.parent)  # the rename itself survives a power cut


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
#: ``scheme://...``: what inputs and stores read over the network look like (group 1: the scheme).
URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (read over the network, never made absolute)."""
    return URL_RE.match(os.fspath(path)) is not None


def check_posix_path(path: str | os.PathLike) -> None:
    """Refuse an output named by a URL (``s3://bucket/x.zarr``; also as a path turns it,
    ``s3:/bucket/x.zarr``): writes rely on atomic renames and exclusive creation, which object
    stores and WebDAV do not offer, and the path would otherwise become a local directory ``s3:``."""
    from .errors import UnsupportedURLError

    text = os.fspath(path)
    m = _URL.match(text)
    if m:
        scheme, rest = m.group(1), text[m.end():].lstrip("/")
        raise UnsupportedURLError(f"{scheme}://{rest}: outputs are written to POSIX filesystems (local disk, NFS, Lustre, "
                                  f"GPFS, BeeGFS, CephFS), not to {scheme}:// URLs; write it there and copy it")


def check_writable_parent(path: str | os.PathLike) -> None:
    """Refuse, before anything is written, an output named by a URL or whose directory is missing
    or not writable (an ``OSError`` naming ``path``: the commands print it as their one error line)."""
    check_posix_path(path)
    parent = Path(path).absolute().parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"directory {parent} does not exist", str(path))
    if not os.access(parent, os.W_OK):  # also false on a read-only file system, for root too
        raise PermissionError(errno.EACCES, f"directory {parent} is not writable", str(path))


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (renames, new files) to disk, where the system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory: nothing more to do there
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, allow_nan: bool = True, indent: int | None = 1) -> None:
    """Write JSON to ``path`` through a temporary file, fsync and rename (atomic replace).
    ``allow_nan=False`` refuses NaN and infinities (``ValueError``) instead of writing them;
    ``indent=None`` writes compact JSON (with the C encoder: several times faster for big documents)."""
    text = json.dumps(obj, indent=indent, sort_keys=False, allow_nan=allow_nan,
                      separators=None if indent is not None else (",", ":"))
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``sha256``, ``md5``, ...), read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.new(algorithm, usedforsecurity=False)).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (what store provenance records)."""
    return file_digest(path, "sha256")


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a file or directory if it exists."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def read_yaml_mapping(path: str | os.PathLike, *, what: str, error: type[Exception], allow_empty: bool = False) -> dict:
    """A YAML file that must hold a mapping, or ``error`` with one line naming the file.

    Args:
        what: what the file is, for messages (``"config file"`` gives "no such config file").
        error: the exception class to raise (the caller's error family).
        allow_empty: an empty file is an empty mapping instead of an error.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as err:
        raise error(f"{path}: no such {what}") from err
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nested too deep
        raise error(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if doc is None and allow_empty:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{path}: a {what} must hold a YAML mapping")
    return doc
