"""``pcdata catalog ...`` (public datasets and the shared catalog) as real subprocesses."""

from __future__ import annotations

import json
import stat

import pytest

from pcdata.catalog import init_catalog, open_catalog
from tests.catalog.test_shared import make_store
from tests.conftest import run_cli
from tests.store.conftest import shard


@pytest.fixture(autouse=True)
def _no_catalog_from_the_environment(monkeypatch):
    # run_cli passes os.environ on: a developer's own PCDATA_CATALOG must not leak into the tests.
    monkeypatch.delenv("PCDATA_CATALOG", raising=False)


def test_catalog_list_json_holds_the_public_datasets():
    proc = run_cli("pcdata", "catalog", "list", "--json", check=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert list(doc) == ["public", "shared"] and doc["shared"] == []
    by_name = {d["name"]: d for d in doc["public"]}
    assert len(by_name) == 14
    assert by_name["jetnet:t"]["num_clouds"] == 177945
    assert by_name["jetnet:t"]["files"][0]["url"] == "https://zenodo.org/records/6975118/files/t.hdf5?download=1"
    assert by_name["calochallenge:ds2"]["total_size"] == 1356475617 + 1366708391
    assert by_name["calochallenge:ds3"]["geometry"] == "ds3"
    assert by_name["jetnet:z150"]["total_size"] is None


def test_catalog_list_table():
    proc = run_cli("pcdata", "catalog", "list", check=True, timeout=60)
    assert "Public datasets" in proc.stdout
    assert "No shared catalog (pass --catalog DIR or set PCDATA_CATALOG)." in proc.stdout
    for text in ("jetnet:g150", "calochallenge:ds1-pions", "8099322", "2.7 GB", "not published"):
        assert text in proc.stdout


def test_catalog_list_bad_catalog_file(tmp_path):
    bad = tmp_path / "cat.yaml"
    bad.write_text("format: pcdata-public-catalog\nversion: 7\ndatasets: []\n")
    proc = run_cli("pcdata", "catalog", "list", "--public-catalog", str(bad), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: catalog {bad}: version: this pcdata reads version 1, found 7"
    # --catalog is the shared catalog, a directory: a file there is a mistake worth naming.
    proc = run_cli("pcdata", "catalog", "list", "--catalog", str(bad), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: --catalog {bad}: a file; a shared catalog is a directory "
                                   "(a public catalog file goes to --public-catalog)")


# -- the shared catalog ----------------------------------------------------------------------------


def _cat(*args: str, check: bool = True):
    return run_cli("pcdata", "catalog", *args, check=check, timeout=60)


def test_shared_catalog_workflow(tmp_path, monkeypatch):
    stores, cat = tmp_path / "stores", tmp_path / "cat"
    a, b = make_store(stores / "a"), make_store(stores / "b", seed=1)
    init = json.loads(_cat("init", str(cat), "--allowed-root", str(stores), "--json").stdout)
    assert init == {"catalog": str(cat), "allowed_roots": [str(stores)]}
    assert _cat("add", "top30", str(a), "--catalog", str(cat)).stdout.startswith(f"registered top30@1: {a} (300 clouds")
    entry = json.loads(_cat("add", "top30", str(b), "--catalog", str(cat), "--json").stdout)
    assert (entry["name"], entry["version"], entry["path"], entry["num_clouds"]) == ("top30", 2, str(b), 300)
    assert len(entry["fragments"]) == 3 and entry["registered"]["user"]
    assert stat.S_IMODE((cat / "entries" / "top30" / "2.json").stat().st_mode) == 0o640

    monkeypatch.setenv("PCDATA_CATALOG", str(cat))  # from here on, the catalog comes from the environment
    doc = json.loads(_cat("list", "--json").stdout)
    assert len(doc["public"]) == 14
    assert [(e["name"], e["version"]) for e in doc["shared"]] == [("top30", 1), ("top30", 2)]
    table = _cat("list").stdout
    assert f"Shared stores ({cat})" in table and "top30" in table and "jetnet:t" in table
    assert json.loads(_cat("show", "top30@1", "--json").stdout)["path"] == str(a)
    shown = _cat("show", "top30").stdout
    assert "top30@2" in shown and "300 clouds" in shown and "pt" in shown
    assert json.loads(_cat("resolve", "top30", "--json").stdout) == {"name": "top30", "version": 2, "path": str(b)}
    info = json.loads(run_cli("pcdata", "inspect", "top30@1", "--json", check=True).stdout)
    assert info["path"] == str(a) and info["num_clouds"] == 300

    assert json.loads(_cat("remove", "top30@2", "--json").stdout) == {"removed": ["top30@2"]}
    proc = _cat("resolve", "top30@2", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: catalog {cat}: top30@2 was removed; versions: 1"
    assert _cat("resolve", "top30").stdout.strip() == str(a)
    assert a.is_dir() and b.is_dir()


def test_shared_catalog_errors_are_one_line(tmp_path):
    stores, cat = tmp_path / "stores", tmp_path / "cat"
    a = make_store(stores / "a")
    other = make_store(tmp_path / "scratch" / "b")
    init_catalog(cat, [stores])
    proc = _cat("add", "x", str(other), "--catalog", str(cat), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {other}: outside the allowed roots of catalog {cat} ({stores}); "
                                   f"allow it with `pcdata catalog init {cat} --allowed-root DIR`")
    proc = _cat("add", "bad/name", str(a), "--catalog", str(cat), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: catalog name 'bad/name': expected letters")
    assert not list((cat / "entries").iterdir())
    proc = _cat("show", "nothing", "--catalog", str(cat), check=False)
    assert (proc.returncode, proc.stderr.strip()) == (2, f"error: catalog {cat}: no store named 'nothing'; the catalog is empty")
    proc = _cat("resolve", "x", check=False)
    assert (proc.returncode, proc.stderr.strip()) == (2, "error: no shared catalog: pass --catalog DIR or set PCDATA_CATALOG")


def test_list_skips_a_malformed_entry_with_a_warning(tmp_path):
    cat = tmp_path / "cat"
    open_catalog(cat).add("good", make_store(tmp_path / "stores" / "a"))
    bad = cat / "entries" / "broken" / "1.json"
    bad.parent.mkdir()
    bad.write_text('{"format": "pcdata-catalog-entry"')
    proc = _cat("list", "--catalog", str(cat), "--json")
    assert [e["name"] for e in json.loads(proc.stdout)["shared"]] == ["good"]
    assert proc.stderr.startswith(f"warning: {bad}: skipped, not valid JSON")
    proc = _cat("list", "--catalog", str(cat))
    assert "good" in proc.stdout and f"warning: {bad}: skipped" in proc.stderr


def test_verify_exits_2_naming_what_differs(tmp_path):
    import zarr

    cat = tmp_path / "cat"
    a, b = make_store(tmp_path / "stores" / "a"), make_store(tmp_path / "stores" / "b")
    open_catalog(cat).add("a", a)
    open_catalog(cat).add("b", b)
    assert _cat("verify", "a", "--catalog", str(cat)).stdout.strip() == "ok a@1: 3 fragments match the entry and the data"

    chunk = shard(a, 0)
    chunk.unlink()
    proc = _cat("verify", "a", "--catalog", str(cat), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: a@1 ({a}) differs from its entry: fragment f000000000: unreadable "
                                   f"({a}: fragment f000000000: missing chunk file ({chunk})) (data re-read)")

    arr = zarr.open_array(str(shard(b, 1, "cloud/pt").parent), mode="r+")
    arr[3] = 42.0
    proc = _cat("verify", "b@1", "--catalog", str(cat), "--json", check=False)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["problems"] == ["fragment f000000001: checksum mismatch (data re-read)"]


@pytest.mark.distributed
def test_ingest_registers_only_on_success(tmp_path, jetnet_files, scheduler):
    cat, out = tmp_path / "cat", tmp_path / "stores" / "jets"
    proc = run_cli("pcdata", "ingest", "jetnet", *map(str, jetnet_files), "--out", str(out), "--scheduler", scheduler,
                   "--rows-per-fragment", "2000", "-q", "--register", "jets", "--catalog", str(cat), check=True)
    assert f"registered jets@1 in catalog {cat}" in proc.stdout
    assert open_catalog(cat).resolve("jets") == out

    bad = tmp_path / "in" / "t.hdf5"
    bad.parent.mkdir()
    bad.write_bytes(b"not hdf5 at all")
    failed = tmp_path / "stores" / "failed"
    proc = run_cli("pcdata", "ingest", "jetnet", str(bad), "--out", str(failed), "--scheduler", scheduler, "-q",
                   "--register", "failed", "--catalog", str(cat))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert not failed.exists()
    assert not (cat / "entries" / "failed").exists()
    assert [e.ref for e in open_catalog(cat).entries()] == ["jets@1"]

    # A name that could never be registered is refused before any work is done.
    proc = run_cli("pcdata", "ingest", "jetnet", *map(str, jetnet_files), "--out", str(tmp_path / "stores" / "c"),
                   "--scheduler", scheduler, "-q", "--register", "no good", "--catalog", str(cat))
    assert proc.returncode == 2 and "catalog name 'no good'" in proc.stderr
    assert not (tmp_path / "stores" / "c").exists()
