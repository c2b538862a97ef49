"""One writer at a time: the store's lock file.

``STORE/.pcdata-lock`` is created with ``O_CREAT | O_EXCL`` (atomic on every filesystem the commit
protocol supports) and holds the owner's host, pid, process start time and a random token. A lock
whose process is gone (same host; the pid is not running, or runs a process started at another
time) is taken over with a message on stderr; the takeover itself is serialised by an
``O_EXCL``-created directory, so two processes finding the same stale lock cannot both win.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from ..errors import StoreLockedError

__all__ = ["LOCK_NAME", "StoreLock", "process_alive"]

LOCK_NAME = ".pcdata-lock"
_TAKEOVER_TIMEOUT = 60.0  # seconds after which a takeover directory is itself stale


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (to tell a reused pid apart); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _start_time(pid)
    return started is None or now is None or now == started


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (for temporaries named after their writer)."""
    return _alive(pid, None)


class StoreLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) gives it up."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token

    @staticmethod
    def _document(command: str) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid()),
                "token": uuid.uuid4().hex, "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": command}

    @classmethod
    def create(cls, directory: str | os.PathLike, command: str = "") -> "StoreLock":
        """Take the lock of the store at ``directory``.

        Raises:
            StoreLockedError: another live process holds it (the message names it).
        """
        path = Path(directory) / LOCK_NAME
        doc = cls._document(command)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = cls.holder(directory)
                if holder is None:
                    continue  # released meanwhile: try again
                if not cls._stale(holder):
                    raise StoreLockedError(f"{directory}: {cls.describe(holder)}") from None
                cls._take_over(directory, holder)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            return cls(path, doc["token"])
        raise StoreLockedError(f"{directory}: could not take the store's lock ({path}); try again")

    @staticmethod
    def holder(directory: str | os.PathLike) -> dict | None:
        """The lock document, or None when the store is not locked."""
        try:
            doc = json.loads((Path(directory) / LOCK_NAME).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written this instant, or damaged: treated as held by an unknown owner
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def describe(holder: dict) -> str:
        if not holder:
            return "another process is writing this store (its lock file is unreadable)"
        return (f"another ingest is writing this store (pid {holder.get('pid')} on {holder.get('host')}, since "
                f"{holder.get('time')}: {holder.get('command') or 'no command recorded'}); if that process is gone, "
                f"remove {LOCK_NAME} in the store")

    @staticmethod
    def _stale(holder: dict) -> bool:
        if not holder or holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False  # another host's process cannot be checked from here
        return not _alive(holder["pid"], holder.get("started"))

    @classmethod
    def _take_over(cls, directory: str | os.PathLike, holder: dict) -> None:
        path = Path(directory) / LOCK_NAME
        guard = Path(directory) / (LOCK_NAME + ".takeover")
        try:
            guard.mkdir()
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - guard.stat().st_mtime > _TAKEOVER_TIMEOUT:
                    guard.rmdir()  # left by a process killed while taking over
            time.sleep(0.05)
            return
        try:
            if cls.holder(directory) == holder:  # still the stale one we looked at
                print(f"pcdata: {directory}: taking over the lock of pid {holder.get('pid')} on {holder.get('host')}, "
                      "which is no longer running", file=sys.stderr)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            guard.rmdir()

    def held(self) -> bool:
        holder = self.holder(self.path.parent)
        return bool(holder) and holder.get("token") == self.token

    def release(self) -> None:
        """Give the lock up (only if it is still this lock's)."""
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> "StoreLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
