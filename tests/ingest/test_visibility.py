"""Shared filesystems: a worker that does not see the store or the inputs is an error naming it,
and relative input paths work on workers started elsewhere. The foreign worker is a real Dask
worker in a private mount namespace (``unshare -m``) where a tmpfs hides a directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcdata.ingest import IngestOptions, WorkerVisibilityError, ingest_jetnet
from pcdata.store import open_store
from tests.conftest import run_cli

pytestmark = pytest.mark.distributed


def _unshare_works() -> str | None:
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return None if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")


@pytest.fixture
def foreign_cluster(tmp_path):
    """A scheduler and one worker that sees an empty tmpfs at ``hidden`` (a mount namespace of its own)."""
    why = _unshare_works()
    if why:
        pytest.skip(f"cannot make a private mount namespace here (unshare -m: {why})")
    from distributed import LocalCluster

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    cluster = LocalCluster(n_workers=0, dashboard_address=None, processes=True)
    worker_cmd = (f"mount -t tmpfs tmpfs {hidden} && exec {sys.executable} -m distributed.cli.dask_worker "
                  f"{cluster.scheduler_address} --nthreads 1 --no-dashboard")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", worker_cmd],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from distributed import Client

    with Client(cluster) as client:
        client.wait_for_workers(1, timeout=60)
    yield cluster.scheduler_address, hidden
    proc.terminate()
    proc.wait(timeout=30)
    cluster.close()


def test_a_worker_that_does_not_see_the_store_is_named_and_nothing_is_left(tmp_path, jetnet_files, foreign_cluster):
    address, hidden = foreign_cluster
    out = hidden / "s.zarr"
    with pytest.raises(WorkerVisibilityError) as err:
        ingest_jetnet(jetnet_files, out, cluster=address, options=IngestOptions(progress=False))
    message = str(err.value)
    assert message.startswith("worker tcp://127.0.0.1:") and f"cannot see the store directory {out}" in message
    assert list(hidden.iterdir()) == []  # the new store was removed, nothing reported complete


def test_a_worker_that_does_not_see_an_input_is_named(tmp_path, foreign_cluster):
    address, hidden = foreign_cluster
    from tests.helpers import make_jetnet_file

    path = make_jetnet_file(hidden / "t.hdf5", 200, 30)
    with pytest.raises(WorkerVisibilityError, match=f"cannot see the input file {path}"):
        ingest_jetnet([path], tmp_path / "s", cluster=address, options=IngestOptions(progress=False))
    assert not (tmp_path / "s").exists()


def test_the_cli_names_the_worker_in_one_line(tmp_path, jetnet_files, foreign_cluster):
    address, hidden = foreign_cluster
    r = run_cli("pcdata", "ingest", "jetnet", *map(str, jetnet_files), "--out", str(hidden / "s"),
                "--scheduler", address, "--quiet")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: worker tcp://") and "cannot see the store directory" in lines[0]


def test_relative_inputs_and_store_work_on_workers_started_elsewhere(tmp_path, jetnet_files, scheduler):
    """The session's workers run in the repository; the command runs in another directory with
    relative paths, which are made absolute before any task is sent."""
    work = tmp_path / "here"
    work.mkdir()
    for f in jetnet_files:
        os.link(f, work / f.name)
    r = run_cli("pcdata", "ingest", "jetnet", *[f.name for f in jetnet_files], "--out", "s.zarr",
                "--scheduler", scheduler, "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr
    assert open_store(work / "s.zarr").num_clouds == 4000
    assert not Path("s.zarr").exists()


def test_an_output_url_is_refused_and_nothing_is_created(tmp_path):
    for out in ("s3://bucket/x.zarr", "davs://dcache.desy.de/pnfs/x.zarr"):
        r = run_cli("pcdata", "ingest", "jetnet", "missing.hdf5", "--out", out, "--workers", "1", cwd=tmp_path)
        assert r.returncode == 2
        scheme = out.split(":")[0]
        assert r.stderr.strip() == (f"error: {out}: outputs are written to POSIX filesystems (local disk, NFS, Lustre, "
                                    f"GPFS, BeeGFS, CephFS), not to {scheme}:// URLs; write it there and copy it")
    assert list(tmp_path.iterdir()) == []
