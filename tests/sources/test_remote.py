"""Tests of pcdata.sources._remote: HDF5 over HTTP reads only the byte ranges it needs, and every
way a server fails is one SourceError naming the URL (a real server on 127.0.0.1)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from pcdata.errors import RemoteReadError, SourceError
from pcdata.sources._remote import input_sha256, is_url, read_error, remote_info
from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block
from tests.helpers import make_jetnet_file
from tests.range_server import serve_dir


@pytest.fixture(scope="module")
def jet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("http")
    make_jetnet_file(d / "t150.hdf5", 20000, 150, seed=2)  # ~48 MB of particle_features
    return d


def test_is_url():
    assert is_url("https://x/a.h5") and is_url("root://host//a.root") and not is_url("/data/a.h5")
    assert not is_url("a:b.h5")


def test_reading_a_block_over_http_fetches_a_small_part_of_the_file(jet_dir):
    path = jet_dir / "t150.hdf5"
    size = path.stat().st_size
    with serve_dir(jet_dir) as server:
        url = f"{server.url}/t150.hdf5"
        meta = inspect_jetnet_file(url)
        assert (meta.n_jets, meta.num_particles, meta.size) == (20000, 150, size)
        server.reset()
        remote = read_jetnet_block(meta, 9300, 9500)
        fetched = server.bytes_sent("t150.hdf5")
    local = read_jetnet_block(inspect_jetnet_file(path), 9300, 9500)
    assert remote.equals(local)
    # h5py reads whole chunks (1024 jets, 2.5 MB here); blocks of 1 MiB and the HDF5 metadata add some.
    print(f"read 200 of 20000 jets over HTTP: fetched {fetched / 1e6:.1f} MB of a {size / 1e6:.1f} MB file")
    assert 1024 * 150 * 16 <= fetched < size / 8


def test_sha256_streams_the_url(jet_dir):
    with serve_dir(jet_dir) as server:
        assert input_sha256(f"{server.url}/t150.hdf5") == input_sha256(str(jet_dir / "t150.hdf5"))


def test_server_errors_are_one_line_naming_the_url(jet_dir):
    with serve_dir(jet_dir) as server:
        with pytest.raises(SourceError, match=r"^http://127\.0\.0\.1:\d+/missing\.hdf5: no such file on the server$"):
            inspect_jetnet_file(f"{server.url}/missing.hdf5")
    with serve_dir(jet_dir, ranges=False) as server:
        url = f"{server.url}/t150.hdf5"
        with pytest.raises(SourceError, match=rf"^{url}: the server does not answer HTTP Range requests"):
            inspect_jetnet_file(url)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/t150.hdf5"
    with pytest.raises(SourceError, match=rf"^{url}: cannot reach the server \(.*\)$") as info:
        remote_info(url)
    assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match=r"^s3://b/t\.hdf5: cannot read s3:// inputs"):
        remote_info("s3://b/t.hdf5")


def test_a_broken_connection_on_a_worker_keeps_what_was_committed(jet_dir):
    """Network failures during a read are RemoteReadError (the pipeline keeps committed fragments),
    not SourceError (which removes the store as bad input)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/t150.hdf5"
    try:
        remote_info(url)
    except SourceError as err:
        opened = err
    with pytest.raises(RemoteReadError, match=rf"^{url}: the connection broke while reading jets 0:10 .*re-run"):
        read_error(url, opened, "jets 0:10")
    with pytest.raises(SourceError, match="cannot read jets 0:10 .KeyError"):
        read_error(url, KeyError("x"), "jets 0:10")
    assert np.isfinite(port)
