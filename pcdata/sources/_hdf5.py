"""Opening HDF5 inputs with one-line errors that say why a file cannot be read."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import SourceError
from ._remote import is_url, open_remote, remote_errors

__all__ = ["open_hdf5", "damaged_hdf5"]


def open_hdf5(path: str):
    """Open an HDF5 file for reading, or raise :class:`SourceError` naming the file and the reason
    (missing, a directory, empty, truncated, not HDF5)."""
    import h5py

    if is_url(path):
        return _open_remote_hdf5(path)
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{path}: no such file")
    if p.is_dir():
        raise SourceError(f"{path}: is a directory, expected an HDF5 file")
    if p.stat().st_size == 0:
        raise SourceError(f"{path}: empty file (0 bytes)")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        # h5py's message carries the HDF5 reason, e.g. "truncated file: eof = ..." or
        # "file signature not found"; keep it so the user knows which of the two it is.
        reason = str(err).split(" (")[0].strip()
        detail = str(err)
        if "truncated file" in detail:
            reason = "truncated file: " + detail.split("truncated file:")[1].split(")")[0].strip()
        elif "signature not found" in detail:
            reason = "file signature not found"
        raise SourceError(f"{path}: not a readable HDF5 file ({reason})") from err


def _open_remote_hdf5(url: str):
    """h5py on an fsspec file object: only the blocks HDF5 asks for are fetched."""
    import h5py

    class RemoteHDF5File(h5py.File):
        # h5py does not close a file object it was given; the fsspec file holds the block cache.
        def close(self):
            try:
                super().close()
            finally:
                fobj.close()

    fobj = open_remote(url)
    try:
        with remote_errors(url):
            return RemoteHDF5File(fobj, "r")
    except SourceError as err:
        fobj.close()
        if "signature not found" in str(err) or "truncated" in str(err):
            raise SourceError(f"{url}: not a readable HDF5 file") from err
        raise


@contextlib.contextmanager
def damaged_hdf5(path: str, what: str):
    """Raise what h5py raises on a damaged file (a bad B-tree or object header gives KeyError,
    RuntimeError, OSError or ValueError, found by the fuzz targets) as :class:`SourceError`."""
    try:
        yield
    except SourceError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SourceError(f"{path}: cannot read {what}, the file is damaged ({reason})") from err
