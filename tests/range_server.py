"""A real HTTP server for remote-input tests: serves a directory on 127.0.0.1 with Range support.

Python's ``http.server`` ignores ``Range``; this handler answers ``bytes=a-b``, ``bytes=a-`` and
``bytes=-n`` with 206 (one range per request, as fsspec asks), sends ETag and Last-Modified, and
counts the body bytes it sends per path, so a test can tell how much of a file a reader fetched.
``ranges=False`` makes it a server that ignores Range (200 with the whole file).
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

from tests.helpers import serve_http

__all__ = ["RangeServer", "serve_dir"]


@dataclass
class RangeServer:
    root: Path
    url: str = ""
    ranges: bool = True
    sent: dict[str, int] = field(default_factory=dict)  # path -> body bytes sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bytes_sent(self, name: str) -> int:
        with self.lock:
            return self.sent.get("/" + name, 0)

    def reset(self) -> None:
        with self.lock:
            self.sent.clear()


def _handler(state: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers (and aiohttp's pool) use

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _target(self) -> Path | None:
            path = (state.root / self.path.split("?", 1)[0].lstrip("/")).resolve()
            return path if path.is_file() and state.root in path.parents else None

        def _head(self, status: int, length: int, st: os.stat_result, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            if state.ranges:
                self.send_header("Accept-Ranges", "bytes")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()

        def _answer(self, body: bool) -> None:
            path = self._target()
            if path is None:
                self.send_error(404, "no such file")
                return
            st = path.stat()
            size = st.st_size
            start, stop, status, extra = 0, size, 200, {}
            rng = self.headers.get("Range")
            if rng and state.ranges and rng.startswith("bytes=") and "," not in rng:
                a, b = rng[6:].split("-")
                if a == "":
                    start, stop = max(0, size - int(b)), size
                else:
                    start, stop = int(a), min(size, int(b) + 1) if b else size
                if start >= size:
                    self._head(416, 0, st, {"Content-Range": f"bytes */{size}"})
                    return
                status, extra = 206, {"Content-Range": f"bytes {start}-{stop - 1}/{size}"}
            self._head(status, stop - start, st, extra)
            if not body:
                return
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(stop - start)
            with state.lock:
                state.sent[self.path] = state.sent.get(self.path, 0) + len(data)
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    return Handler


@contextlib.contextmanager
def serve_dir(root: str | os.PathLike, *, ranges: bool = True) -> Iterator[RangeServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread for the block."""
    state = RangeServer(Path(root).resolve(), ranges=ranges)
    with serve_http(_handler(state)) as state.url:
        yield state
