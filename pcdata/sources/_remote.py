"""Inputs read over the network: ``http(s)://`` through fsspec's HTTP filesystem, ``root://``
(XRootD) through fsspec-xrootd, both as uproot reads them by default.

Only the byte ranges a reader asks for are fetched: HDF5 through h5py on an fsspec file with a
block cache, ROOT through uproot. Failures become one line naming the URL: a missing file, a
server that cannot be reached or that ignores ``Range`` requests is bad input
(:class:`SourceError`); a connection that breaks while a worker reads is
:class:`RemoteReadError`, which keeps the fragments already committed so a re-run finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, NoReturn

from .._io import URL_RE as _URL
from .._io import is_url
from ..errors import PcdataError, RemoteReadError, SourceError

__all__ = ["SCHEMES", "is_url", "RemoteInfo", "remote_info", "open_remote", "input_size", "input_identity",
           "input_sha256", "read_error", "remote_errors"]

#: URL schemes inputs may have (``xroot`` is XRootD's other spelling).
SCHEMES = ("http", "https", "root", "xroot")
#: Bytes per cached block of a remote HDF5 file: HDF5 metadata reads are small and scattered,
#: data reads are whole chunks; one block per round trip.
BLOCK_SIZE = 1 << 20


def _check_scheme(url: str) -> str:
    scheme = _URL.match(url).group(1).lower()
    if scheme not in SCHEMES:
        raise SourceError(f"{url}: cannot read {scheme}:// inputs; inputs are local files or http://, https://, "
                          "root:// URLs")
    return scheme


def _fs(url: str):
    """The fsspec filesystem for ``url`` and the path it takes."""
    scheme = _check_scheme(url)
    import fsspec

    if scheme in ("http", "https"):
        return fsspec.filesystem("http", block_size=BLOCK_SIZE), url
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise SourceError(f"{url}: reading root:// needs the XRootD client for Python (pip install xrootd "
                          "fsspec-xrootd)") from err


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _network(err: BaseException) -> bool:
    """A failure of the connection, not of the bytes (walks the exception's causes)."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(getattr(err, "status", None), int) or _missing(err):
            return False  # the server answered (an HTTP status, no such file): not a broken connection
        if isinstance(err, (OSError, TimeoutError)) and not isinstance(err, FileNotFoundError):
            return True
        mod = type(err).__module__
        if mod.startswith(("aiohttp", "XRootD", "fsspec_xrootd")):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _missing(err: BaseException) -> bool:
    # XRootD answers a missing file with error 3011 inside an OSError.
    return isinstance(err, FileNotFoundError) or "[3011]" in str(err)


@contextlib.contextmanager
def remote_errors(url: str) -> Iterator[None]:
    """Turn what fsspec, aiohttp or XRootD raise while opening ``url`` into one SourceError line."""
    try:
        yield
    except PcdataError:
        raise
    except Exception as err:
        if _missing(err) and not isinstance(err, FileNotFoundError):
            raise SourceError(f"{url}: no such file on the server") from err
        if isinstance(err, FileNotFoundError):
            # fsspec's HTTP stat raises FileNotFoundError for any failure: look at what it hides.
            cause = err.__cause__ or err.__context__
            if cause is None or getattr(cause, "status", None) == 404 or isinstance(cause, FileNotFoundError):
                raise SourceError(f"{url}: no such file on the server") from err
            err = cause
        status = getattr(err, "status", None)
        if isinstance(status, int):
            raise SourceError(f"{url}: the server answered HTTP {status} {getattr(err, 'message', '')}".rstrip()) from err
        if isinstance(err, ValueError) and "range requests" in str(err):
            raise SourceError(f"{url}: the server does not answer HTTP Range requests, which reading parts of a "
                              "file needs") from err
        if _network(err):
            raise SourceError(f"{url}: cannot reach the server ({_reason(err)})") from err
        raise SourceError(f"{url}: cannot read ({_reason(err)})") from err


@dataclass(frozen=True)
class RemoteInfo:
    """What the server says of a file: its size and what changes when it is replaced."""

    url: str
    size: int
    version: tuple[str, ...]  # ETag and Last-Modified (HTTP), modification time (XRootD)


def remote_info(url: str) -> RemoteInfo:
    """Stat ``url`` on its server and check that it answers range requests (HTTP).

    Raises:
        SourceError: no such file, server unreachable, no size reported, no range requests.
    """
    fs, path = _fs(url)
    with remote_errors(url):
        info = fs.info(path)
        if info.get("type") == "directory":
            raise SourceError(f"{url}: is a directory, expected a file")
        size = info.get("size")
        if size is None:
            raise SourceError(f"{url}: the server does not report the file's size (no Content-Length)")
        if size == 0:
            raise SourceError(f"{url}: empty file (0 bytes)")
        if size > 1 and hasattr(fs, "async_impl") and type(fs).__name__ == "HTTPFileSystem":
            # One byte past the start: a server that ignores Range answers the whole file (refused
            # here, once, instead of mid-read on a worker).
            with fs.open(path, "rb", size=size, block_size=BLOCK_SIZE, cache_type="none") as f:
                f.seek(1)
                f.read(1)
    version = tuple(str(info[k]) for k in ("ETag", "Last-Modified", "mtime", "modified") if info.get(k) is not None)
    return RemoteInfo(url, int(size), version)


def open_remote(url: str, size: int | None = None) -> Any:
    """A seekable binary file object over ``url`` that fetches blocks of ``BLOCK_SIZE`` on demand."""
    fs, path = _fs(url)
    if size is None:
        size = remote_info(url).size
    with remote_errors(url):
        return fs.open(path, "rb", size=size, block_size=BLOCK_SIZE, cache_type="blockcache")


def input_size(path: str | os.PathLike) -> int:
    """Size in bytes of a local file or a URL."""
    return remote_info(str(path)).size if is_url(path) else os.path.getsize(path)


def input_identity(path: str) -> list[Any]:
    """What the resume fingerprint records of an input: a local file's absolute path, size and
    mtime; a URL with its size, ETag and Last-Modified (or XRootD's mtime)."""
    if is_url(path):
        info = remote_info(path)
        return [path, info.size, *info.version]
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def input_sha256(path: str) -> str:
    """sha256 of a local file, or of a URL streamed once (runs on a worker)."""
    if not is_url(path):
        from .._io import file_sha256

        return file_sha256(path)
    fs, p = _fs(path)
    h = hashlib.sha256()
    try:
        # block_size=0: one streamed GET over HTTP instead of a request per block.
        with fs.open(p, "rb", block_size=0 if type(fs).__name__ == "HTTPFileSystem" else 8 << 20) as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
    except Exception as err:
        read_error(path, err, "the whole file for its checksum")
    return h.hexdigest()


def read_error(path: str, err: BaseException, what: str) -> NoReturn:
    """Raise the error for a failed read of ``what`` on a worker: a broken connection to a URL
    keeps what was committed (:class:`RemoteReadError`), also where it surfaced as a SourceError
    while opening; anything else is bad input (:class:`SourceError`)."""
    cause = err.__cause__ if isinstance(err, SourceError) else err
    if is_url(path) and cause is not None and _network(cause):
        raise RemoteReadError(f"{path}: the connection broke while reading {what} ({_reason(cause)}); committed "
                              "fragments are kept, re-run the same command to finish") from err
    if isinstance(err, PcdataError):
        raise err
    raise SourceError(f"{path}: cannot read {what} ({_reason(err)})") from err
