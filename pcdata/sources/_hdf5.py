"""Opening HDF5 inputs with one-line errors that say why a file cannot be read."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import SourceError

__all__ = ["open_hdf5", "damaged_hdf5"]


def open_hdf5(path: str):
    """Open an HDF5 file for reading, or raise :class:`SourceError` naming the file and the reason
    (missing, a directory, empty, truncated, not HDF5)."""
    import h5py

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
