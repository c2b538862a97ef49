"""A real HTTP file server for download tests, with switches for the failures downloads meet.

It serves generated files under two roots, the way a catalog and a mirror lay them out:
``/zenodo/records/<record>/files/<name>`` (the catalog URLs; the query string is ignored) and
``/mirror/<record>/<name>`` (``<base_url>/<record>/<name>`` with ``base_url = <url>/mirror``).
It honours ``Range: bytes=N-`` with 206 answers unless told to ignore it, and records every
request's path and ``Range`` header.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import numpy as np
import yaml

from tests.helpers import serve_http

__all__ = ["ServedFile", "FileServer", "serve_files", "make_files", "catalog_dict", "write_catalog"]


@dataclass
class ServedFile:
    """A generated file as the server holds it."""

    name: str
    record: int
    data: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


@dataclass
class FileServer:
    """What the handler serves and the switches tests flip between requests."""

    files: dict[str, ServedFile]
    url: str = ""
    corrupt: set[str] = field(default_factory=set)  # names served with one byte flipped
    cut: dict[str, list[int]] = field(default_factory=dict)  # name -> byte counts to stop after, one per request
    ignore_range: bool = False  # answer 200 with the whole file, and no Accept-Ranges header
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, path: str) -> ServedFile | None:
        path = path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:2] == ["zenodo", "records"] and parts[3] == "files":
            record, name = parts[2], parts[4]
        elif len(parts) == 3 and parts[0] == "mirror":
            record, name = parts[1], parts[2]
        else:
            return None
        f = self.files.get(name)
        return f if f is not None and str(f.record) == record else None

    def ranges_seen(self, name: str) -> list[str | None]:
        """The Range headers of the requests for ``name``, in order (None: no Range)."""
        with self.lock:
            return [r for p, r in self.requests if p.split("?", 1)[0].endswith("/" + name)]


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            with server.lock:
                server.requests.append((self.path, rng))
                f = server.lookup(self.path)
                cut = server.cut.get(f.name, []) if f is not None else []
                stop_after = cut.pop(0) if cut else None
            if f is None:
                self.send_error(404, "no such file")
                return
            data = f.data
            if f.name in server.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            if rng and not server.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            if not server.ignore_range:
                self.send_header("Accept-Ranges", "bytes")
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if stop_after is not None:
                # Cut the connection part-way: the client sees fewer bytes than Content-Length.
                body = body[:stop_after]
                self.close_connection = True
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on purpose (e.g. a size it will not accept)

    return Handler


@contextlib.contextmanager
def serve_files(files: list[ServedFile]) -> Iterator[FileServer]:
    """Run a ThreadingHTTPServer on 127.0.0.1 (a free port) in a thread for the block."""
    state = FileServer(files={f.name: f for f in files})
    with serve_http(_handler(state)) as state.url:
        yield state


def make_files(seed: int = 0) -> list[ServedFile]:
    """Three files of random bytes over two records (sizes not multiples of any block)."""
    rng = np.random.default_rng(seed)
    sizes = {"a.hdf5": 300_001, "b.hdf5": 70_003, "c.hdf5": 1_500_007}
    records = {"a.hdf5": 111, "b.hdf5": 111, "c.hdf5": 222}
    return [ServedFile(n, records[n], rng.integers(0, 256, s, dtype=np.uint8).tobytes()) for n, s in sizes.items()]


def catalog_dict(server: FileServer, *, with_size: bool = True, with_md5: bool = True) -> dict[str, Any]:
    """A catalog whose sizes and MD5s match the served files: ``test:ab`` (a, b) and ``test:c``."""

    def entry(name: str, members: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "description": "generated test files",
            "kind": "showers",
            "layout": "calochallenge-hdf5",
            "geometry": "ds2",
            "files": [
                {
                    "name": f.name,
                    "record": f.record,
                    "url": f"{server.url}/zenodo/records/{f.record}/files/{f.name}?download=1",
                    "size": len(f.data) if with_size else None,
                    "md5": f.md5 if with_md5 else None,
                }
                for f in (server.files[m] for m in members)
            ],
            "ingest": f"pcdata ingest calochallenge --geometry ds2 {' '.join(members)} --out test.zarr",
        }

    return {
        "format": "pcdata-public-catalog",
        "version": 1,
        "datasets": [entry("test:ab", ["a.hdf5", "b.hdf5"]), entry("test:c", ["c.hdf5"])],
    }


def write_catalog(path, doc: dict[str, Any]):
    """Write a catalog document as YAML and return the path."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
