"""Ingest over HTTP (pcdata.sources._remote through the generic pipeline): JetNet, CaloChallenge
and ROOT files served by a real range-capable server on 127.0.0.1 give the stores a local ingest
of the same files gives; a missing URL is one error line through the CLI."""

from __future__ import annotations

import hashlib
import shutil

import h5py
import numpy as np
import pytest

from pcdata import open_store
from pcdata.generate.showers import generate_showers
from pcdata.ingest import IngestOptions, ingest
from tests.conftest import run_cli
from tests.helpers import jetclass_arrays, make_jetnet_file, write_root
from tests.range_server import serve_dir

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def served(tmp_path_factory, pythia_top150):
    """A JetNet, a CaloChallenge ds2 and a ROOT (JetClass) file, served over HTTP."""
    d = tmp_path_factory.mktemp("served")
    make_jetnet_file(d / "t.hdf5", 3000, 30, seed=5)
    generate_showers(d / "ds2.hdf5", geometry="ds2", num_showers=120, seed=3, progress=False)
    with h5py.File(pythia_top150) as f:
        pf, jf = f["particle_features"][:], f["jet_features"][:]
    write_root(d / "jc.root", "tree", jetclass_arrays(pf, jf, seed=1), baskets=3)
    with serve_dir(d) as server:
        yield d, server


def _same_store(remote, local) -> None:
    assert [f.to_dict() for f in remote.fragments] == [f.to_dict() for f in local.fragments]
    assert remote.stats == local.stats
    assert remote.read().equals(local.read())


@pytest.mark.parametrize("fmt,name,params,rows", [
    ("jetnet", "t.hdf5", {}, 700),
    ("calochallenge", "ds2.hdf5", {"geometry": "ds2"}, 50),
    ("root", "jc.root", {"tree": "tree"}, 90),
])
def test_http_input_gives_the_local_store(tmp_path, served, scheduler, fmt, name, params, rows):
    d, server = served
    opts = IngestOptions(rows_per_fragment=rows, progress=False)
    url = f"{server.url}/{name}"
    remote = ingest(fmt, [url], tmp_path / "remote", options=opts, cluster=scheduler, **params)
    local = ingest(fmt, [d / name], tmp_path / "local", options=opts, cluster=scheduler, **params)
    assert len(remote.fragments) > 1
    _same_store(remote, local)
    # Provenance names the URL as given and the sha256 a worker streamed from it.
    (src,) = remote.meta.provenance.sources
    assert src.path == url and src.size == (d / name).stat().st_size
    assert src.sha256 == hashlib.sha256((d / name).read_bytes()).hexdigest()
    assert remote.meta.fingerprint != local.meta.fingerprint


def test_a_changed_file_on_the_server_is_a_different_ingest(tmp_path, served, scheduler):
    """The fingerprint holds the server's size/ETag/Last-Modified: a replaced file is not resumed into."""
    from pcdata.ingest.pipeline import fingerprint
    from pcdata.sources.jetnet import JetNetSource

    d, server = served
    shutil.copy(d / "t.hdf5", d / "z.hdf5")
    source = JetNetSource.open([f"{server.url}/z.hdf5"])
    before = fingerprint(source, {})
    assert fingerprint(source, {}) == before
    make_jetnet_file(d / "z.hdf5", 3000, 30, seed=6)  # same size, new content and mtime
    assert fingerprint(source, {}) != before


def test_cli_ingest_of_a_missing_url_is_one_line(tmp_path, served):
    _, server = served
    out = tmp_path / "s"
    proc = run_cli("pcdata", "ingest", "jetnet", f"{server.url}/nope.hdf5", "--out", str(out), "--workers", "1", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {server.url}/nope.hdf5: no such file on the server"
    assert not out.exists()


def test_cli_ingest_over_http(tmp_path, served):
    d, server = served
    out = tmp_path / "s"
    run_cli("pcdata", "ingest", "calochallenge", f"{server.url}/ds2.hdf5", "--geometry", "ds2", "--out", str(out),
            "--workers", "1", "--quiet", check=True)
    s = open_store(out)
    with h5py.File(d / "ds2.hdf5") as f:
        assert s.num_clouds == len(f["showers"])
    np.testing.assert_array_equal(s.counts, s.field("num_points"))
