"""Ingest on a real batch system: a single-node SLURM started for the session (slurmctld, slurmd,
munged from Debian's packages via scripts/slurm-local.sh), its workers SLURM jobs."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pcdata.cluster import ClusterSpec
from pcdata.ingest import IngestOptions, ingest_jetnet
from pcdata.store import open_store
from tests.conftest import REPO
from tests.helpers import make_jetnet_file

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running single-node SLURM, or a skip saying why there is none."""
    state = tmp_path_factory.mktemp("slurm")
    script = REPO / "scripts" / "slurm-local.sh"
    r = subprocess.run(["bash", str(script), "start", str(state)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        reason = (r.stderr.strip() or r.stdout.strip()).splitlines()
        pytest.skip(f"no SLURM here: {reason[0] if reason else f'slurm-local.sh exit {r.returncode}'}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    yield state
    subprocess.run(["scancel", "--user", os.environ.get("USER", "root")], capture_output=True)
    subprocess.run(["bash", str(script), "stop", str(state)], capture_output=True, timeout=60)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def _spec(slurm: Path, workers: int) -> ClusterSpec:
    # interface lo: the scheduler in this process listens where the jobs on this node reach it.
    return ClusterSpec(kind="slurm", cores=1, memory="2GB", walltime="00:20:00", workers=workers, interface="lo",
                       log_directory=str(slurm / "jobs"), local_directory=str(slurm / "scratch"), wait=120)


def _jobs() -> list[str]:
    r = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True)
    return r.stdout.split()


def _same_store(a, b) -> None:
    assert [f.to_dict() for f in a.fragments] == [f.to_dict() for f in b.fragments]
    assert a.stats == b.stats and a.read().equals(b.read())


def test_slurm_jobs_ingest_the_same_store_as_a_local_cluster(tmp_path, slurm, jetnet_files, scheduler):
    options = IngestOptions(rows_per_fragment=500, progress=False)
    local = ingest_jetnet(jetnet_files, tmp_path / "local", cluster=scheduler, options=options)
    batch = ingest_jetnet(jetnet_files, tmp_path / "batch", cluster=_spec(slurm, 2), options=options)
    _same_store(batch, local)
    logs = sorted((slurm / "jobs").glob("*.err"))
    assert logs, "the workers ran as SLURM jobs, which write their logs there"
    deadline = time.monotonic() + 30
    while _jobs() and time.monotonic() < deadline:  # the jobs end with the ingest
        time.sleep(0.5)
    assert not _jobs()


def test_a_worker_job_cancelled_mid_ingest_loses_and_doubles_nothing(tmp_path, slurm, scheduler):
    path = make_jetnet_file(tmp_path / "t.hdf5", 40_000, 30, seed=5)
    options = IngestOptions(rows_per_fragment=100, progress=False)
    out = tmp_path / "batch"
    cancelled: list[str] = []

    def cancel_one_when_half_done():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                root = json.loads((out / "zarr.json").read_text())["attributes"]["pcdata"]
            except (OSError, ValueError, KeyError):
                root = {}
            jobs = _jobs()
            if root.get("num_fragments", 0) >= 40 and len(jobs) == 2:
                subprocess.run(["scancel", jobs[0]], check=True)
                cancelled.append(jobs[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=cancel_one_when_half_done)
    killer.start()
    batch = ingest_jetnet([path], out, cluster=_spec(slurm, 2), options=options)
    killer.join()
    assert cancelled, "a worker job was cancelled while fragments were being written"
    assert batch.num_clouds == 40_000 and len(batch.fragments) == 400
    local = ingest_jetnet([path], tmp_path / "local", cluster=scheduler, options=options)
    _same_store(open_store(out), local)
    # Nothing of the killed worker's unfinished fragment is left in the store.
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
