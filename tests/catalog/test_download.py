"""pcdata.catalog.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import importlib

import pytest

from pcdata.catalog import PublicCatalog, download, file_url, resolve_base_url
from pcdata.errors import ChecksumError, DatasetNotFoundError, DownloadError
from tests.catalog.server import catalog_dict, make_files, serve_files, write_catalog
from tests.conftest import run_cli

# The package re-exports the function ``download``, which hides the module of the same name.
_download_mod = importlib.import_module("pcdata.catalog.download")


@pytest.fixture
def server():
    with serve_files(make_files()) as s:
        yield s


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    # Retries wait 1 s, 2 s, ... in real use; tests need not.
    monkeypatch.setattr(_download_mod, "_RETRY_DELAY_S", 0.0)
    monkeypatch.delenv("PCDATA_MIRROR", raising=False)


def _catalog(server, **kw) -> PublicCatalog:
    return PublicCatalog.from_dict(catalog_dict(server, **kw), source="test-catalog")


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_downloads_every_file_checked_and_in_order(server, tmp_path):
    paths = download("test:ab", dir=tmp_path / "new" / "dir", catalog=_catalog(server), progress=False)
    assert [p.name for p in paths] == ["a.hdf5", "b.hdf5"]
    for p in paths:
        assert _md5(p) == server.files[p.name].md5
    assert sorted(x.name for x in (tmp_path / "new" / "dir").iterdir()) == ["a.hdf5", "b.hdf5"]  # no .part
    assert [path.split("?")[0] for path, _ in server.requests] == [
        "/zenodo/records/111/files/a.hdf5", "/zenodo/records/111/files/b.hdf5"]


def test_catalog_can_be_a_file_path(server, tmp_path):
    cat = write_catalog(tmp_path / "cat.yaml", catalog_dict(server))
    (path,) = download("test:c", dir=tmp_path, catalog=cat, progress=True)
    assert _md5(path) == server.files["c.hdf5"].md5


def test_existing_good_files_are_skipped_without_a_request(server, tmp_path):
    cat = _catalog(server)
    download("test:ab", dir=tmp_path, catalog=cat, progress=False)
    n = len(server.requests)
    assert download("test:ab", dir=tmp_path, catalog=cat, progress=False) == [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    assert len(server.requests) == n


def test_existing_wrong_file_is_reported_and_left_alone(server, tmp_path):
    (tmp_path / "c.hdf5").write_bytes(b"not the file")
    with pytest.raises(ChecksumError, match=r"c\.hdf5 exists but has 12 bytes, the catalog says 1500007"):
        download("test:c", dir=tmp_path, catalog=_catalog(server), progress=False)
    assert (tmp_path / "c.hdf5").read_bytes() == b"not the file"
    assert server.requests == []


def test_corrupt_file_raises_and_leaves_nothing(server, tmp_path):
    server.corrupt.add("b.hdf5")
    with pytest.raises(ChecksumError, match=r"b\.hdf5 downloaded from .* has md5 [0-9a-f]{32}, the catalog says") as info:
        download("test:ab", dir=tmp_path, catalog=_catalog(server), progress=False)
    assert "removed" in str(info.value) and "\n" not in str(info.value)
    # a.hdf5 came first and is good; nothing of b is left, not even a .part.
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.hdf5"]


def test_cut_connection_keeps_part_and_a_rerun_resumes_with_range(server, tmp_path):
    server.cut["c.hdf5"] = [400_000]
    cat = _catalog(server)
    with pytest.raises(DownloadError, match=r"after 400000 of 1500007 bytes.*c\.hdf5\.part is kept: run again"):
        download("test:c", dir=tmp_path, catalog=cat, progress=False, retries=0)
    assert not (tmp_path / "c.hdf5").exists()
    assert (tmp_path / "c.hdf5.part").stat().st_size == 400_000

    (path,) = download("test:c", dir=tmp_path, catalog=cat, progress=False, retries=0)
    assert _md5(path) == server.files["c.hdf5"].md5
    assert server.ranges_seen("c.hdf5") == [None, "bytes=400000-"]
    assert not (tmp_path / "c.hdf5.part").exists()


def test_retries_resume_within_one_call(server, tmp_path):
    server.cut["c.hdf5"] = [100_000, 50_000]  # two cuts, then a whole answer
    (path,) = download("test:c", dir=tmp_path, catalog=_catalog(server), progress=False, retries=2)
    assert _md5(path) == server.files["c.hdf5"].md5
    assert server.ranges_seen("c.hdf5") == [None, "bytes=100000-", "bytes=150000-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    data = server.files["c.hdf5"].data
    # A stale .part whose bytes are not even a prefix: a server answering 200 must overwrite it.
    (tmp_path / "c.hdf5.part").write_bytes(b"x" * 1000)
    (path,) = download("test:c", dir=tmp_path, catalog=_catalog(server), progress=False, retries=0)
    assert path.read_bytes() == data
    assert server.ranges_seen("c.hdf5") == ["bytes=1000-"]


def test_cut_on_a_server_without_ranges_leaves_no_part(server, tmp_path):
    server.ignore_range = True
    server.cut["c.hdf5"] = [300_000]
    with pytest.raises(DownloadError, match="after 300000 of 1500007 bytes") as info:
        download("test:c", dir=tmp_path, catalog=_catalog(server), progress=False, retries=0)
    assert "kept" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # it could not be resumed, so nothing is kept


def test_cut_on_a_server_without_ranges_retries_from_zero(server, tmp_path):
    server.ignore_range = True
    server.cut["c.hdf5"] = [300_000]
    (path,) = download("test:c", dir=tmp_path, catalog=_catalog(server), progress=False, retries=1)
    assert _md5(path) == server.files["c.hdf5"].md5
    assert server.ranges_seen("c.hdf5") == [None, None]


def test_whole_part_left_before_rename_is_finished_without_refetching(server, tmp_path):
    # Without a size in the catalog the client must ask; the server answers 416 (nothing past the end).
    (tmp_path / "a.hdf5.part").write_bytes(server.files["a.hdf5"].data)
    paths = download("test:ab", dir=tmp_path, catalog=_catalog(server, with_size=False), progress=False)
    assert _md5(paths[0]) == server.files["a.hdf5"].md5
    assert server.ranges_seen("a.hdf5") == [f"bytes={len(server.files['a.hdf5'].data)}-"]


def test_without_an_md5_the_right_size_is_not_enough(server, tmp_path):
    # The served files are random bytes: of the catalog's size, but not CaloChallenge files.
    for with_size in (True, False):
        with pytest.raises(ChecksumError, match=r"a\.hdf5 downloaded from .* has not a readable HDF5 file"):
            download("test:ab", dir=tmp_path / "s", catalog=_catalog(server, with_md5=False, with_size=with_size),
                     progress=True)
        assert list((tmp_path / "s").iterdir()) == []


def test_server_file_longer_than_catalog_size_fails_early(server, tmp_path):
    doc = catalog_dict(server)
    doc["datasets"][1]["files"][0]["size"] = 1000
    with pytest.raises(ChecksumError, match=r"c\.hdf5 at .* is 1500007 bytes, the catalog says 1000"):
        download("test:c", dir=tmp_path, catalog=PublicCatalog.from_dict(doc), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server(server, tmp_path):
    doc = catalog_dict(server)
    doc["datasets"][1]["files"][0]["url"] = f"{server.url}/zenodo/records/222/files/nothere.hdf5"
    with pytest.raises(DownloadError, match="server answered 404"):
        download("test:c", dir=tmp_path, catalog=PublicCatalog.from_dict(doc), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_mirror_from_argument_and_environment(server, tmp_path, monkeypatch):
    cat = _catalog(server)
    (c,) = download("test:c", dir=tmp_path / "arg", catalog=cat, base_url=server.url + "/mirror/", progress=False)
    assert _md5(c) == server.files["c.hdf5"].md5
    monkeypatch.setenv("PCDATA_MIRROR", server.url + "/mirror")
    download("test:ab", dir=tmp_path / "env", catalog=cat, progress=False)
    assert [p for p, _ in server.requests] == ["/mirror/222/c.hdf5", "/mirror/111/a.hdf5", "/mirror/111/b.hdf5"]


def test_mirror_url_rule_and_validation(server, monkeypatch):
    f = _catalog(server).get("test:c").files[0]
    assert file_url(f) == f.url
    assert file_url(f, "https://mirror.example/data/") == "https://mirror.example/data/222/c.hdf5"
    assert resolve_base_url(None) is None
    monkeypatch.setenv("PCDATA_MIRROR", "https://env.example")
    assert resolve_base_url(None) == "https://env.example"
    assert resolve_base_url("https://arg.example/") == "https://arg.example"  # the argument wins
    with pytest.raises(DownloadError, match="not an http"):
        resolve_base_url("ftp://mirror.example")


def test_unreachable_server_is_one_clear_error(tmp_path):
    with serve_files(make_files()) as s:
        cat = _catalog(s)
    # The server is gone: nothing listens on that port any more.
    with pytest.raises(DownloadError, match="cannot connect"):
        download("test:c", dir=tmp_path, catalog=cat, progress=False, retries=1)
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset(server, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="did you mean test:c"):
        download("test:cc", dir=tmp_path, catalog=_catalog(server), progress=False)


# -- files without a published MD5 (JetNet's): the content is checked and its sha256 recorded -----
def _jetnet_bytes(tmp_path, n: int = 120, p: int = 30, **attrs) -> bytes:
    from tests.helpers import synthetic_jetnet_arrays
    import h5py

    pf, jf = synthetic_jetnet_arrays(n, p, seed=1)
    path = tmp_path / f"made-{n}-{p}.hdf5"
    with h5py.File(path, "w") as f:
        f["particle_features"], f["jet_features"] = pf, jf
        f.attrs.update(attrs)
    return path.read_bytes()


def _jetnet_catalog(server, *, num_particles: int = 30, num_clouds: int | None = 120) -> PublicCatalog:
    f = server.files["t.hdf5"]
    return PublicCatalog.from_dict({"format": "pcdata-public-catalog", "version": 1, "datasets": [{
        "name": "jetnet:t", "description": "top jets", "kind": "jets", "layout": "jetnet-hdf5",
        "num_particles": num_particles, "num_clouds": num_clouds,
        "files": [{"name": "t.hdf5", "record": f.record, "url": f"{server.url}/zenodo/records/{f.record}/files/t.hdf5",
                   "size": None, "md5": None}],
        "ingest": "pcdata ingest jetnet t.hdf5 --out t.zarr"}]}, source="test-catalog")


def _serve_t(data: bytes):
    from tests.catalog.server import ServedFile

    return serve_files([ServedFile("t.hdf5", 333, data)])


def test_a_mirror_page_instead_of_the_file_is_refused_and_nothing_is_kept(tmp_path):
    page = b"<html>Not Found</html>\n\n\n\n"  # a mirror's error page, answered with 200
    assert len(page) == 26
    with _serve_t(page) as server:
        with pytest.raises(ChecksumError, match=r"t\.hdf5 downloaded from .* has not a readable HDF5 file "
                                                r"\(file signature not found\); the download was removed"):
            download("jetnet:t", dir=tmp_path / "d", catalog=_jetnet_catalog(server), progress=False)
        assert list((tmp_path / "d").iterdir()) == []
        # The same through the command: one line, exit 2, and a re-run does not find it "already here".
        from tests.catalog.server import write_catalog

        cat = write_catalog(tmp_path / "cat.yaml", _jetnet_catalog(server).to_dict())
        for _ in range(2):
            r = run_cli("pcdata", "download", "jetnet:t", "--dir", str(tmp_path / "d"), "--catalog", str(cat), "--quiet")
            assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a readable HDF5 file" in r.stderr, r.stderr
        assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("made, catalog, problem", [
    (dict(n=100), dict(), "100 jets, the catalog says 120"),
    (dict(p=150), dict(), "150 particles per jet, the catalog says 30"),
    (dict(jet_class="q"), dict(), "disagrees with .* whose jet_class attribute says 'q'"),
], ids=["rows", "particles", "class"])
def test_a_file_of_another_layout_is_refused(tmp_path, made, catalog, problem):
    n, p = made.pop("n", 120), made.pop("p", 30)
    with _serve_t(_jetnet_bytes(tmp_path, n, p, **made)) as server:
        with pytest.raises(ChecksumError, match=problem):
            download("jetnet:t", dir=tmp_path / "d", catalog=_jetnet_catalog(server, **catalog), progress=False)
    assert list((tmp_path / "d").iterdir()) == []


def test_a_checked_file_has_its_sha256_recorded_and_a_later_change_is_found(tmp_path):
    data = _jetnet_bytes(tmp_path)
    with _serve_t(data) as server:
        cat = _jetnet_catalog(server)
        (path,) = download("jetnet:t", dir=tmp_path / "d", catalog=cat, progress=False)
        assert path.read_bytes() == data
        sidecar = tmp_path / "d" / "t.hdf5.sha256"
        assert sidecar.read_text() == f"{hashlib.sha256(data).hexdigest()}  t.hdf5\n"
        assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["t.hdf5", "t.hdf5.sha256"]
        n = len(server.requests)
        assert download("jetnet:t", dir=tmp_path / "d", catalog=cat, progress=False) == [path]
        assert len(server.requests) == n  # checked against the record, not fetched again
        # One byte changed after the download (a still-valid HDF5 file): found, left alone.
        changed = bytearray(data)
        changed[-5] ^= 0xFF
        path.write_bytes(bytes(changed))
        with pytest.raises(ChecksumError, match=r"t\.hdf5 exists but has sha256 [0-9a-f]{64}, but t\.hdf5\.sha256 "
                                                r"recorded [0-9a-f]{64} at download; remove it"):
            download("jetnet:t", dir=tmp_path / "d", catalog=cat, progress=False)
        assert path.read_bytes() == bytes(changed)
        # A file from before sha256s were recorded: its content is checked, then its sha256 recorded.
        path.write_bytes(data)
        sidecar.unlink()
        download("jetnet:t", dir=tmp_path / "d", catalog=cat, progress=False)
        assert sidecar.read_text().split()[0] == hashlib.sha256(data).hexdigest()
        # ... and a page left there by an older pcdata is refused, not "already here".
        sidecar.unlink()
        path.write_bytes(b"<html>Not Found</html>\n")
        with pytest.raises(ChecksumError, match=r"t\.hdf5 exists but has not a readable HDF5 file"):
            download("jetnet:t", dir=tmp_path / "d", catalog=cat, progress=False)
