"""Shared filesystems: every worker must see the store and the inputs the client sees.

A worker whose filesystem differs (another mount namespace, a node without the mount, a path
that exists only on the submit host) would read nothing or write fragments nobody else sees.
The client checks before the first task and again before each commit; see :func:`run_ingest`.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Sequence

from .._io import check_posix_path, fsync_dir
from ..errors import ClusterError

__all__ = ["WorkerVisibilityError", "check_posix_output", "check_visibility", "worker_name"]


class WorkerVisibilityError(ClusterError):
    """A worker does not see the store or an input file (a filesystem the client does not share)."""


def check_posix_output(out: str | os.PathLike) -> Path:
    """``out`` as an absolute path; a URL is refused (:func:`pcdata._io.check_posix_path`)."""
    check_posix_path(out)
    return Path(out).absolute()


def worker_name() -> str:
    """``address (host)`` of the Dask worker running this, or the host outside a worker."""
    try:
        from distributed import get_worker

        return f"{get_worker().address} ({socket.gethostname()})"
    except ValueError:
        return socket.gethostname()


def _missing(paths: Sequence[str]) -> tuple[str, list[str]]:
    """Runs on each worker: its host and the paths it cannot see."""
    return socket.gethostname(), [p for p in paths if not os.path.exists(p)]


def check_visibility(client, store: str | os.PathLike, inputs: Sequence[str]) -> None:
    """Check that every worker sees a file the client writes into the store and every local
    input file (URLs are read over the network, not from a filesystem).

    Raises:
        WorkerVisibilityError: naming the first worker and path it cannot see.
    """
    store = Path(store)
    sentinel = store / f".visible-{uuid.uuid4().hex[:12]}"
    sentinel.write_text("written by the ingest client to check that every worker sees the store\n")
    try:
        fsync_dir(store)
        local = [str(p) for p in inputs if "://" not in str(p)]
        seen = client.run(_missing, [str(sentinel), *local])
    finally:
        sentinel.unlink(missing_ok=True)
    for address in sorted(seen):
        host, missing = seen[address]
        if missing:
            path = missing[0]
            what = "the store directory" if path == str(sentinel) else "the input file"
            shown = store if path == str(sentinel) else path
            raise WorkerVisibilityError(f"worker {address} ({host}): cannot see {what} {shown}; the store and the inputs must "
                                        "be on a filesystem every worker mounts at the same path")
