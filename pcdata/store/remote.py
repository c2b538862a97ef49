"""Reading a store at a URL, read-only: ``http(s)://`` (and any fsspec protocol with byte ranges).

Format 2 needs no directory listing: the root names the manifests, the manifests the fragments,
and each array is one shard file whose index sits at its end. So a reader fetches the root, the
manifests a request touches, each shard's index (one ``HEAD`` for its size, one ranged ``GET``
for its tail) and then, per request, one ranged ``GET`` covering the chunks that hold the rows.
The same checks as on a local disk apply (sizes against indexes, crc32c, decoded sizes): a file
the server lacks or serves cut short is a :class:`~pcdata.errors.StoreFormatError`, a connection
that fails a :class:`~pcdata.errors.RemoteStoreError`.

Format 1 stores (chunks through zarr, fragments listed as directories) are read locally only.
"""

from __future__ import annotations

import os

from .._io import is_url
from ..errors import RemoteStoreError

__all__ = ["is_url", "read_bytes", "file_size", "read_range", "join"]


def join(base: str | os.PathLike, *parts: str):
    """``base/parts...``: a string for a URL (a ``Path`` would fold its ``//``), a Path otherwise."""
    from pathlib import Path

    if is_url(base):
        return "/".join([os.fspath(base).rstrip("/"), *parts])
    return Path(base).joinpath(*parts)


def _fs(url: str):
    import fsspec

    # fsspec caches filesystem instances per process (and drops them in a forked child), so this
    # is cheap; no block cache: every read here is one exact range.
    return fsspec.core.url_to_fs(url)[0]


def _fail(url: str, err: BaseException) -> BaseException:
    """A missing file stays FileNotFoundError (callers name what was missing); a server that answers
    with an error or cannot be reached becomes RemoteStoreError."""
    status = getattr(err, "status", None)
    cause = err.__cause__ or err.__context__
    if isinstance(err, FileNotFoundError) and (cause is None or getattr(cause, "status", None) == 404):
        return FileNotFoundError(2, "no such file on the server", url)
    if status == 404:
        return FileNotFoundError(2, "no such file on the server", url)
    if isinstance(err, FileNotFoundError) and cause is not None:
        err = cause  # fsspec's stat hides every failure behind FileNotFoundError(url)
        status = getattr(err, "status", None)
    text = f"{type(err).__name__}: {str(err).strip().splitlines()[0]}" if str(err).strip() else type(err).__name__
    what = f"the server answered HTTP {status}" if isinstance(status, int) else f"cannot reach the server ({text})"
    return RemoteStoreError(f"{url}: {what}")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole file."""
    if not is_url(path):
        with open(path, "rb") as f:
            return f.read()
    url = os.fspath(path)
    try:
        return _fs(url).cat_file(url)
    except Exception as err:  # noqa: BLE001 - fsspec and aiohttp raise many kinds
        raise _fail(url, err) from err


def file_size(url: str) -> int:
    try:
        size = _fs(url).info(url).get("size")
    except Exception as err:  # noqa: BLE001
        raise _fail(url, err) from err
    if size is None:
        raise RemoteStoreError(f"{url}: the server does not report the file's size (no Content-Length)")
    return int(size)


def read_range(url: str, start: int, stop: int) -> bytes:
    """Bytes ``start:stop`` (fewer where the file is shorter: the callers check the length)."""
    if stop <= start:
        return b""
    try:
        data = _fs(url).cat_file(url, start=int(start), end=int(stop))
    except Exception as err:  # noqa: BLE001
        if getattr(err, "status", None) == 416:  # a range past the end: the file is shorter than that
            return b""
        raise _fail(url, err) from err
    if len(data) > stop - start:  # the whole file: the server ignored the Range header
        raise RemoteStoreError(f"{url}: the server does not answer HTTP Range requests, which reading a store needs")
    return data
