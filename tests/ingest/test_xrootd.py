"""``pcdata ingest root root://...``: ROOT files read over XRootD from a real server (Debian's
``xrootd-server``, started on 127.0.0.1 here), including a server killed mid-ingest: one error
line, the committed fragments kept, and a re-run after the restart finishes the same store."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from pcdata import open_store
from pcdata.ingest import IngestOptions, ingest
from tests.conftest import REPO
from tests.helpers import write_root

pytestmark = pytest.mark.distributed

# Fail fast when the server is gone (the client's defaults retry for minutes).
XRD_ENV = {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "2", "XRD_REQUESTTIMEOUT": "20", "XRD_STREAMTIMEOUT": "20"}


class XRootDServer:
    """An ``xrootd`` process exporting one directory on a fixed 127.0.0.1 port (restartable)."""

    def __init__(self, exe: str, base: Path):
        self.exe, self.base = exe, base
        self.export = base / "export"
        self.logs = base / "logs"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"root://127.0.0.1:{self.port}/{self.export / name}"

    def start(self) -> None:
        # xrootd refuses to run as root: it drops to nobody, who must read the export and write the logs.
        user = ["-R", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen([self.exe, *user, "-p", str(self.port), "-l", str(self.logs / "xrootd.log"),
                                      "-n", f"pcdata{self.port}", str(self.export)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"xrootd exited ({self.proc.returncode}): {self.proc.stdout.read().strip()[-300:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("xrootd did not listen within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # as a crashing server: no goodbye to clients
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def xrootd():
    exe = shutil.which("xrootd")
    if exe is None:
        pytest.skip("no xrootd executable (Debian: apt-get install xrootd-server; scripts/services.sh installs it)")
    try:
        import fsspec_xrootd  # noqa: F401
        import XRootD.client  # noqa: F401
    except ImportError as err:
        pytest.skip(f"no XRootD client for Python ({err}; pip install xrootd fsspec-xrootd, the dev extra has them)")
    base = Path(tempfile.mkdtemp(prefix="pcdata-xrootd-"))
    os.chmod(base, 0o755)
    (base / "export").mkdir(mode=0o755)
    (base / "logs").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base / "logs", "nobody")
    server = XRootDServer(exe, base)
    try:
        server.start()
    except (RuntimeError, OSError) as err:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start xrootd on 127.0.0.1: {err}")
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _events(path: Path, n_events: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 5, n_events)
    branches = {"Muon": ak.zip({"pt": ak.unflatten(rng.exponential(20, n.sum()).astype(np.float32), n),
                                "eta": ak.unflatten(rng.normal(0, 1.5, n.sum()).astype(np.float32), n)}),
                "event": np.arange(n_events, dtype=np.uint64)}
    write_root(path, "Events", branches, baskets=8)
    os.chmod(path, 0o644)
    return path


PARAMS = dict(tree="Events", collection="Muon", features=("pt", "eta"), event_fields=("event",))


def test_xrootd_input_gives_the_local_store(tmp_path, xrootd, scheduler, monkeypatch):
    for k, v in XRD_ENV.items():
        monkeypatch.setenv(k, v)
    path = _events(xrootd.export / "small.root", 3000, seed=1)
    opts = IngestOptions(rows_per_fragment=700, progress=False)
    remote = ingest("root", [xrootd.url("small.root")], tmp_path / "remote", options=opts, cluster=scheduler, **PARAMS)
    local = ingest("root", [path], tmp_path / "local", options=opts, cluster=scheduler, **PARAMS)
    assert len(remote.fragments) == 5
    assert remote.read().equals(local.read()) and remote.stats == local.stats
    assert remote.meta.provenance.sources[0].path == xrootd.url("small.root")
    assert remote.meta.provenance.sources[0].sha256 == local.meta.provenance.sources[0].sha256


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.pcdata", *args]


def test_server_killed_mid_ingest_keeps_committed_fragments_and_a_rerun_finishes(tmp_path, xrootd):
    path = _events(xrootd.export / "big.root", 12000, seed=2)
    out = tmp_path / "s"
    args = _cli("ingest", "root", xrootd.url("big.root"), "--tree", "Events", "--collection", "Muon", "--features",
                "pt,eta", "--event-fields", "event", "--out", str(out), "--workers", "1", "--rows-per-fragment", "100",
                "--quiet")
    env = {**os.environ, **XRD_ENV, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for _ in out.glob("fragments/*/*/*/zarr.json")) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the ingest ended before the server was killed: {proc.communicate()}"
    xrootd.stop()
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    print(lines[0])
    assert len(lines) == 1 and lines[0].startswith(f"error: {xrootd.url('big.root')}: "), stderr
    assert ": the connection broke while reading entries " in lines[0] and "re-run the same command" in lines[0], stderr
    assert out.exists()  # the committed fragments are kept (a broken connection is not bad input)
    xrootd.start()
    rerun = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    local = ingest("root", [path], tmp_path / "local", options=IngestOptions(rows_per_fragment=100, progress=False),
                   cluster={"workers": 1}, **PARAMS)
    s = open_store(out)
    assert s.complete and s.num_clouds == 12000
    assert s.read().equals(local.read())
