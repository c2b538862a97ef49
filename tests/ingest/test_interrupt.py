"""Ingests killed part-way: the client (whole process group) or one Dask worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcdata import open_store
from pcdata.errors import StoreIncompleteError
from pcdata.sources.jetnet import JetNetSource
from tests.conftest import REPO
from tests.helpers import make_jetnet_file

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

ROWS = "100"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    # 200 fragments of 100 jets: long enough to be caught in the middle.
    return make_jetnet_file(tmp_path_factory.mktemp("big") / "t.hdf5", 20_000, 30, seed=11)


def _ingest_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.pcdata", "ingest", "jetnet", str(src), "--out", str(out),
            "--rows-per-fragment", ROWS, "--quiet", *extra]


def _committed(out: Path) -> int:
    try:
        return json.loads((out / "zarr.json").read_text())["attributes"]["pcdata"]["num_fragments"]
    except (FileNotFoundError, KeyError, ValueError):
        return 0


def _check_committed_part(out: Path, src: Path) -> int:
    """A reader of the interrupted store sees committed fragments only, each intact and right."""
    s = open_store(out, allow_incomplete=True)
    source = JetNetSource.open([src])
    assert s.verify() == []
    for frag, clouds in zip(s.fragments, s.iter_fragments()):
        assert clouds.equals(source.read(0, frag.source["start"], frag.source["stop"]))
    assert s.read().num_points == sum(f.num_points for f in s.fragments)
    return s.num_clouds


@pytest.fixture(scope="module")
def reference(tmp_path_factory, big_file):
    out = tmp_path_factory.mktemp("ref") / "s"
    subprocess.run(_ingest_cmd(big_file, out, "--workers", "2"), check=True, cwd=REPO, capture_output=True)
    return open_store(out)


def _same_store(a, b) -> None:
    assert [f.to_dict() for f in a.fragments] == [f.to_dict() for f in b.fragments]
    assert a.stats == b.stats
    assert a.read().equals(b.read())


def test_client_killed_then_rerun_gives_the_uninterrupted_store(tmp_path, big_file, reference):
    out = tmp_path / "s"
    proc = subprocess.Popen(_ingest_cmd(big_file, out, "--workers", "2"), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen_mid = 0
    deadline = time.monotonic() + 120
    while _committed(out) < 5 and time.monotonic() < deadline and proc.poll() is None:
        n = _committed(out)
        if n:  # readers during the ingest only ever see committed, intact fragments
            _check_committed_part(out, big_file)
            seen_mid += 1
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n = _committed(out)
    assert 0 < n < 200, f"kill landed outside the ingest ({n} fragments committed)"
    with pytest.raises(StoreIncompleteError, match=f"{n} of 200 fragments committed"):
        open_store(out)
    assert _check_committed_part(out, big_file) == n * 100
    rerun = subprocess.run(_ingest_cmd(big_file, out, "--workers", "2"), cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    _same_store(open_store(out), reference)


def test_worker_killed_midway_still_gives_the_same_store(tmp_path, big_file, reference):
    import logging

    import psutil
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        worker_pids = list(client.run(os.getpid).values())
        out = tmp_path / "s"
        proc = subprocess.Popen(_ingest_cmd(big_file, out, "--scheduler", cluster.scheduler_address), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while _committed(out) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        psutil.Process(worker_pids[0]).kill()  # the nanny restarts it; its tasks are rescheduled
        assert _committed(out) < 200
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    _same_store(open_store(out), reference)
