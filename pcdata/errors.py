"""Errors raised by pcdata.

One base class, :class:`PcdataError`; each error also inherits the builtin it refines, so
``except FileNotFoundError`` keeps working for callers who do not know this package. Messages
name the file (or key, or parameter), what was expected and what was found, on one line: the CLI
prints ``error: <message>`` and exits with code 2.
"""

from __future__ import annotations

__all__ = [
    "PcdataError",
    "SourceError",
    "StoreError",
    "StoreNotFoundError",
    "NotAStoreError",
    "StoreFormatError",
    "StoreIncompleteError",
    "RemoteStoreError",
    "StoreExistsError",
    "StoreLockedError",
    "SplitNotFoundError",
    "IngestError",
    "RemoteReadError",
    "ClusterError",
    "ExportError",
    "GenerateError",
    "CatalogError",
    "CatalogNotFoundError",
    "CatalogFormatError",
    "DatasetNotFoundError",
    "EntryNotFoundError",
    "EntryExistsError",
    "StoreNotAllowedError",
    "EntryMismatchError",
    "InvalidReferenceError",
    "DownloadError",
    "ChecksumError",
]


class PcdataError(Exception):
    """Base class of every error pcdata raises on purpose."""


class SourceError(PcdataError, ValueError):
    """An input file (HDF5, ROOT, ...) is missing, unreadable or does not follow its layout."""


class StoreError(PcdataError):
    """Base class of the errors about a point-cloud store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store path does not exist."""


class NotAStoreError(StoreError, ValueError):
    """The path exists but holds no point-cloud store."""


class StoreFormatError(StoreError, ValueError):
    """The store's metadata is of an unknown format or version, or is invalid."""


class StoreIncompleteError(StoreError, RuntimeError):
    """The store is an interrupted ingest: some fragments are not committed yet."""


class StoreExistsError(StoreError, FileExistsError):
    """The output path is taken by a complete store or by something that is not a store."""


class SplitNotFoundError(StoreError, KeyError):
    """The store has no split of that name (the message lists the splits it has)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreLockedError(StoreError, BlockingIOError):
    """Another process holds the store's writer lock."""


class RemoteStoreError(StoreError, ConnectionError):
    """A store read at a URL could not be fetched: the server failed or could not be reached."""


class IngestError(PcdataError, RuntimeError):
    """An ingest could not run to the end for a reason other than bad input."""


class RemoteReadError(PcdataError, ConnectionError):
    """An input read over the network (HTTP, XRootD) broke mid-ingest: the server went away.
    Unlike bad input it keeps the committed fragments; re-running the ingest finishes it."""


class ClusterError(PcdataError, RuntimeError):
    """The Dask cluster could not be started or reached."""


class ExportError(PcdataError, ValueError):
    """A store cannot be written in the requested format."""


class CatalogError(PcdataError):
    """Base class of the errors about a dataset catalog."""


class CatalogNotFoundError(CatalogError, FileNotFoundError):
    """The catalog file does not exist."""


class CatalogFormatError(CatalogError, ValueError):
    """The catalog file is not valid YAML or breaks the catalog schema (the message names the field)."""


class DatasetNotFoundError(CatalogError, LookupError):
    """No dataset of that name is in the catalog (the message lists the closest names)."""


class EntryNotFoundError(CatalogError, LookupError):
    """No entry of that name (or that version) in the shared catalog (the message lists what there is)."""


class EntryExistsError(CatalogError, FileExistsError):
    """The requested version of a name is taken in the shared catalog (versions are never reused)."""


class StoreNotAllowedError(CatalogError, PermissionError):
    """The store lies outside the allowed roots of the shared catalog's ``catalog.yaml``."""


class EntryMismatchError(CatalogError, ValueError):
    """The store at a catalog entry's path is not the one registered (another kind, other data,
    a symbolic link put in its place) or is no longer there."""


class InvalidReferenceError(CatalogError, ValueError):
    """A catalog name or ``name@version`` reference is malformed."""


class DownloadError(PcdataError, OSError):
    """A file could not be fetched: the server refused, the connection broke, or sizes disagree."""


class ChecksumError(DownloadError):
    """A fetched or existing file does not have the size or MD5 the catalog records."""


class GenerateError(PcdataError, ValueError):
    """A generator was given bad arguments or a configuration that yields nothing."""


class UnsupportedURLError(PcdataError, ValueError):
    """An output named by a URL (``s3://...``): stores and files are written to POSIX filesystems."""
