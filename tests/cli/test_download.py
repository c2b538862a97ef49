"""``pcdata download`` as a real subprocess against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib

import pytest

from tests.catalog.server import catalog_dict, make_files, serve_files, write_catalog
from tests.conftest import run_cli


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.delenv("PCDATA_MIRROR", raising=False)
    with serve_files(make_files(seed=3)) as server:
        yield server, write_catalog(tmp_path / "catalog.yaml", catalog_dict(server))


def _download(catalog, out, *extra):
    return run_cli("pcdata", "download", "test:c", "--catalog", str(catalog), "--dir", str(out), *extra, timeout=60)


def test_download_prints_the_paths(served, tmp_path):
    server, catalog = served
    proc = run_cli("pcdata", "download", "test:ab", "--catalog", str(catalog), "--dir", str(tmp_path / "d"),
                   "--base-url", server.url + "/mirror", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(tmp_path / "d" / "a.hdf5"), str(tmp_path / "d" / "b.hdf5")]
    assert [p for p, _ in server.requests] == ["/mirror/111/a.hdf5", "/mirror/111/b.hdf5"]
    assert hashlib.md5((tmp_path / "d" / "b.hdf5").read_bytes()).hexdigest() == server.files["b.hdf5"].md5


def test_checksum_mismatch_exits_2_and_leaves_nothing(served, tmp_path):
    server, catalog = served
    server.corrupt.add("c.hdf5")
    proc = _download(catalog, tmp_path / "d", "--quiet")
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: c.hdf5 downloaded from ") and "the download was removed" in line
    assert list((tmp_path / "d").iterdir()) == []


def test_cut_connection_then_rerun_resumes(served, tmp_path):
    server, catalog = served
    server.cut["c.hdf5"] = [600_000]
    first = _download(catalog, tmp_path / "d", "--retries", "0", "--quiet")
    assert first.returncode == 2
    assert "c.hdf5.part is kept: run again to resume" in first.stderr
    second = _download(catalog, tmp_path / "d", "--retries", "0")
    assert second.returncode == 0, second.stderr
    assert hashlib.md5((tmp_path / "d" / "c.hdf5").read_bytes()).hexdigest() == server.files["c.hdf5"].md5
    assert server.ranges_seen("c.hdf5") == [None, "bytes=600000-"]


def test_unknown_name_exits_2_with_suggestions(served, tmp_path):
    _, catalog = served
    proc = run_cli("pcdata", "download", "test:a", "--catalog", str(catalog), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no dataset 'test:a' in catalog ") and "did you mean" in proc.stderr
