"""Fixtures shared across the suite: a real Dask cluster, input files, CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_jetnet_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dask_cluster():
    """A real LocalCluster (2 single-threaded worker processes), shared by the session."""
    import logging

    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def scheduler(dask_cluster) -> str:
    return dask_cluster.scheduler_address


@pytest.fixture(scope="session")
def jetnet_files(tmp_path_factory) -> list[Path]:
    """Two small JetNet-layout files named so that their class is known (t and q)."""
    d = tmp_path_factory.mktemp("jetnet")
    return [make_jetnet_file(d / "t.hdf5", 3000, 30, seed=1), make_jetnet_file(d / "q.hdf5", 1000, 30, seed=2)]


def run_cli(*args: str, timeout: float = 300, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run a console command (``pcdata ...``) as a real subprocess of this interpreter."""
    prog, *rest = args
    cmd = [sys.executable, "-m", f"cli.{prog}", *rest]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=kw.pop("cwd", REPO), env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def pythia_top150(tmp_path_factory) -> Path:
    """Real Pythia 8 + FastJet top jets (P = 150, so no jet is truncated) in the JetNet layout."""
    from pcdata.generate.jets import generate_jets

    path = tmp_path_factory.mktemp("pythia") / "t150.hdf5"
    generate_jets(path, process="top", num_jets=300, num_particles=150, seed=3, workers=1, progress=False)
    return path


@pytest.fixture(scope="session")
def ds2_store(tmp_path_factory, scheduler) -> Path:
    """A small store of parametrised ds2 showers (generated, written as a CaloChallenge file, ingested)."""
    from pcdata.generate.showers import generate_showers
    from pcdata.ingest import IngestOptions, ingest_calochallenge

    d = tmp_path_factory.mktemp("ds2")
    generate_showers(d / "ds2.hdf5", geometry="ds2", num_showers=400, seed=11, progress=False)
    return ingest_calochallenge([d / "ds2.hdf5"], d / "ds2.zarr", geometry="ds2", cluster=scheduler, options=IngestOptions(progress=False)).path


def pytest_collection_modifyitems(config, items):
    """Fuzz targets (tests/fuzz, marker ``fuzz``) run for a time budget each: only when asked for
    with ``-m`` naming the marker or with ``PCDATA_FUZZ=1`` (scripts/test.sh runs a short smoke)."""
    if "fuzz" in (config.getoption("markexpr") or "") or os.environ.get("PCDATA_FUZZ") == "1":
        return
    fuzz = [item for item in items if item.get_closest_marker("fuzz")]
    if fuzz:
        config.hook.pytest_deselected(items=fuzz)
        items[:] = [item for item in items if not item.get_closest_marker("fuzz")]
