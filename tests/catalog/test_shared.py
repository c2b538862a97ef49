"""pcdata.catalog.shared: registering, finding, removing and verifying stores in a shared catalog."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pcdata.catalog import SharedCatalog, init_catalog, open_catalog, resolve_store
from pcdata.errors import (
    CatalogFormatError,
    CatalogNotFoundError,
    EntryExistsError,
    EntryMismatchError,
    EntryNotFoundError,
    StoreIncompleteError,
    StoreNotAllowedError,
    StoreNotFoundError,
)
from pcdata import open_store  # paths and catalog names
from pcdata.store import write_store
from pcdata.store.metadata import read_root, write_root
from tests.store.conftest import shard
from tests.conftest import REPO
from tests.store.conftest import SMALL_CHUNKS, make_clouds, template


def make_store(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A small complete store of 3 fragments."""
    write_store(path, make_clouds(n, seed), template(), clouds_per_fragment=n // 3, chunks=SMALL_CHUNKS)
    return path


@pytest.fixture
def stores(tmp_path) -> Path:
    return tmp_path / "stores"


@pytest.fixture
def store(stores) -> Path:
    return make_store(stores / "a")


@pytest.fixture
def cat(tmp_path) -> SharedCatalog:
    return open_catalog(tmp_path / "cat")


def test_add_records_the_store_and_versions_count_up(cat, store):
    first = cat.add("top30", store)
    second = cat.add("top30", store)
    assert (first.version, second.version) == (1, 2)
    meta = open_store(store).meta
    e = cat.get("top30")
    assert e == second and e.path == str(store) and os.path.isabs(e.path)
    assert (e.kind, e.coords, e.num_clouds, e.num_points) == (meta.kind, meta.coords, meta.num_clouds, meta.num_points)
    assert [(f.id, f.checksum) for f in e.fragments] == [(f.id, f.checksum) for f in open_store(store).fragments]
    assert e.stats == meta.stats and e.provenance == meta.provenance
    assert e.registered_by and e.registered_host and e.registered_at.endswith("+00:00")
    assert cat.get("top30@1") == first
    assert cat.resolve("top30@1") == store
    assert [x.ref for x in cat.entries()] == ["top30@1", "top30@2"]
    # The first add wrote the config: only the store's parent is allowed.
    assert cat.config.allowed_roots == (str(store.parent),)


def test_modes_are_explicit_whatever_the_umask(cat, store):
    old = os.umask(0o077)  # a user whose umask would hide everything from the group
    try:
        e = cat.add("top30", store)
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(cat.entries_dir / "top30" / f"{e.version}.json") == 0o640
    assert mode(cat.config_path) == 0o640
    for d in (cat.root, cat.entries_dir, cat.entries_dir / "top30"):
        assert mode(d) == 0o2770


def test_explicit_version(cat, store):
    assert cat.add("top30", store, version=5).version == 5
    assert cat.add("top30", store).version == 6
    with pytest.raises(EntryExistsError, match=r"top30@5 exists") as err:
        cat.add("top30", store, version=5)
    assert isinstance(err.value, FileExistsError)


def test_remove_keeps_the_version_from_being_reused(cat, store):
    for _ in range(3):
        cat.add("top30", store)
    cat.add("other", store)
    assert cat.remove("top30@3") == ["top30@3"]
    with pytest.raises(EntryNotFoundError, match=r"top30@3 was removed; versions: 1, 2"):
        cat.get("top30@3")
    assert cat.get("top30").version == 2
    assert cat.add("top30", store).version == 4
    with pytest.raises(EntryExistsError, match="versions are not reused"):
        cat.add("top30", store, version=3)
    assert cat.remove("top30") == ["top30@1", "top30@2", "top30@4"]
    with pytest.raises(EntryNotFoundError, match=r"no store named 'top30'; did you mean"):
        cat.get("top30")
    assert [e.ref for e in cat.entries()] == ["other@1"]
    assert store.is_dir()  # removing an entry never touches the store


def test_only_complete_stores_under_allowed_roots(tmp_path, stores, store):
    cat = init_catalog(tmp_path / "cat", [stores])
    with pytest.raises(StoreNotFoundError):
        cat.add("x", stores / "missing")
    other = make_store(tmp_path / "scratch" / "b")
    with pytest.raises(StoreNotAllowedError, match=rf"^{other}: outside the allowed roots of catalog ") as err:
        cat.add("x", other)
    assert isinstance(err.value, PermissionError)
    (stores / "link").symlink_to(other)
    with pytest.raises(StoreNotAllowedError):
        cat.add("x", stores / "link")
    write_root(store, replace(read_root(store).meta, status="incomplete"))
    with pytest.raises(StoreIncompleteError):
        cat.add("x", store)
    assert cat.entries() == [] and not (cat.entries_dir / "x").exists()
    # init on an existing catalog adds roots.
    assert init_catalog(cat.root, [tmp_path / "scratch"]).config.allowed_roots == (str(stores), str(tmp_path / "scratch"))
    assert cat.add("x", other).version == 1


def _point_entry_at(cat: SharedCatalog, ref: str, path: Path) -> None:
    name, version = ref.split("@")
    f = cat.entries_dir / name / f"{version}.json"
    doc = json.loads(f.read_text())
    doc["path"] = str(path)
    f.write_text(json.dumps(doc))


def test_every_resolution_checks_the_store_is_still_the_one_registered(tmp_path, stores, store):
    cat = init_catalog(tmp_path / "cat", [stores])
    cat.add("a", store)
    assert cat.resolve("a") == store
    # An entry edited to point at another store inside the roots: other data.
    other = make_store(stores / "other", n=150, seed=1)
    _point_entry_at(cat, "a@1", other)
    with pytest.raises(EntryMismatchError, match=rf"a@1: {other} is not the store registered \(num_clouds 300 != 150\)"):
        cat.resolve("a")
    # ... or at a store of another kind (a jets entry must not open a showers store).
    showers = make_store(stores / "showers")
    write_root(showers, replace(read_root(showers).meta, kind="showers"))
    _point_entry_at(cat, "a@1", showers)
    with pytest.raises(EntryMismatchError, match=rf"a@1 is a store of events, but {showers} holds showers"):
        cat.resolve("a@1")
    # The registered directory replaced by a link, even one to an identical store inside the roots.
    _point_entry_at(cat, "a@1", store)
    shutil.copytree(store, stores / "copy")
    shutil.rmtree(store)
    store.symlink_to(stores / "copy")
    with pytest.raises(EntryMismatchError, match=rf"a@1: {store} was replaced by a symbolic link"):
        cat.resolve("a")
    store.unlink()
    with pytest.raises(EntryMismatchError, match=rf"a@1: {store} no longer exists"):
        cat.resolve("a")
    store.symlink_to(stores / "copy")
    # A store registered through a link is recorded as the directory it points at.
    assert cat.add("b", store).path == str(stores / "copy") and cat.resolve("b") == stores / "copy"


def test_a_missing_catalog_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PCDATA_CATALOG", raising=False)
    with pytest.raises(CatalogNotFoundError, match="no shared catalog: pass --catalog DIR or set PCDATA_CATALOG"):
        open_catalog()
    with pytest.raises(CatalogNotFoundError, match=r"no such directory; create it with `pcdata catalog init"):
        open_catalog(tmp_path / "nope").entries()


def test_malformed_entries_are_reported_and_skipped(cat, store):
    cat.add("top30", store)
    cat.add("top30", store)
    cat.add("jets", store)
    bad = cat.entries_dir / "top30" / "3.json"
    bad.write_text("{not json")
    wrong = cat.entries_dir / "jets" / "2.json"
    wrong.write_text((cat.entries_dir / "top30" / "1.json").read_text())  # holds top30@1
    (cat.entries_dir / "jets" / "notes.json").write_text("{}")
    scan = cat.scan()
    assert [e.ref for e in scan.entries] == ["jets@1", "top30@1", "top30@2"]
    assert len(scan.problems) == 3
    assert any(p.startswith(f"{bad}: skipped, not valid JSON") for p in scan.problems)
    assert f"{wrong}: skipped, holds top30@1, expected jets@2 from its file name" in scan.problems
    assert any(p.startswith(f"{cat.entries_dir / 'jets' / 'notes.json'}: skipped, not an entry file") for p in scan.problems)
    # The latest version being unreadable is an error, not a silent fall-back to an older one.
    with pytest.raises(CatalogFormatError, match=rf"^catalog {bad}: not valid JSON"):
        cat.get("top30")
    assert cat.get("top30@2").version == 2


def test_verify_finds_missing_and_changed_data(tmp_path, cat, stores):
    import zarr

    a, b, c = make_store(stores / "a"), make_store(stores / "b"), make_store(stores / "c")
    for name, s in (("a", a), ("b", b), ("c", c)):
        cat.add(name, s)
    assert cat.verify("a").ok and cat.verify("a").problems == ()

    chunk = shard(a, 1)
    chunk.unlink()
    assert cat.verify("a").problems == (f"fragment f000000001: unreadable ({a}: fragment f000000001: missing chunk file ({chunk})) (data re-read)",)

    arr = zarr.open_array(str(shard(b, 2).parent), mode="r+")
    arr[0, 0] = arr[0, 0] + 1.0
    report = cat.verify("b")
    assert not report.ok and report.problems == ("fragment f000000002: checksum mismatch (data re-read)",)
    assert report.to_dict()["problems"] == list(report.problems)

    # The store re-written in place with other content: its metadata no longer matches the entry.
    write_store(tmp_path / "tmp", make_clouds(200, 7), template(), clouds_per_fragment=100, chunks=SMALL_CHUNKS)
    shutil.rmtree(c)
    shutil.copytree(tmp_path / "tmp", c)
    problems = cat.verify("c").problems
    assert problems[0] == "fragment f000000002: in the entry, missing from the store's metadata"
    assert problems[1].startswith("fragment f000000000: metadata changed since registration")

    shutil.rmtree(shard(a, 2).parents[1])  # a whole fragment gone
    assert cat.verify("a").problems[1].startswith("fragment f000000002: unreadable (")

    (c / "zarr.json").unlink()
    assert cat.verify("c").problems == (f"store: {c}: not a pcdata store (no zarr.json with pcdata metadata)",)


def test_names_resolve_where_a_store_path_is_accepted(tmp_path, cat, store, monkeypatch):
    cat.add("top30", store)
    cat.add("top30", make_store(store.parent / "b"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PCDATA_CATALOG", raising=False)
    with pytest.raises(StoreNotFoundError, match=r"^top30@1: no such store$"):
        open_store("top30@1")  # no catalog in use: the old message
    monkeypatch.setenv("PCDATA_CATALOG", str(cat.root))
    assert open_store("top30@1").path == store
    assert open_store("top30").path == store.parent / "b"
    assert resolve_store("top30@2") == store.parent / "b"
    with pytest.raises(EntryNotFoundError, match=r"top30@7 does not exist; versions: 1, 2"):
        open_store("top30@7")
    with pytest.raises(StoreNotFoundError, match=r"^missing/store: no such store$"):
        open_store("missing/store")  # a path, not a name: untouched
    from pcdata.store import open_store as open_path

    with pytest.raises(StoreNotFoundError, match=r"^top30@1: no such store$"):
        open_path("top30@1")  # the store itself takes paths only: names are resolved a floor above
    (tmp_path / "top30").mkdir()  # an existing path wins over a name
    with pytest.raises(Exception, match="not a pcdata store"):
        open_store("top30")


_WRITER = """
import os, sys, time
from pcdata.catalog import open_catalog
cat_dir, store, me, go = sys.argv[1:]
while not os.path.exists(go):
    time.sleep(0.005)
cat = open_catalog(cat_dir)
for i in range(6):
    # Mostly one name that everybody fights over, and a name of one's own.
    cat.add("shared" if i % 3 else f"own{me}", store)
"""


@pytest.mark.distributed
def test_concurrent_writers_lose_nothing(tmp_path, store):
    n_procs = 10
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "cat"), str(store), str(i), str(go)],
                              env=env, stderr=subprocess.PIPE, text=True) for i in range(n_procs)]
    time.sleep(0.5)
    go.touch()  # start together (the catalog does not exist yet: they also race to create it)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    cat = open_catalog(tmp_path / "cat")
    scan = cat.scan()
    assert scan.problems == ()
    shared = [e.version for e in scan.entries if e.name == "shared"]
    assert sorted(shared) == list(range(1, 4 * n_procs + 1))
    for i in range(n_procs):
        assert [e.version for e in scan.entries if e.name == f"own{i}"] == [1, 2]
    files = list(cat.entries_dir.rglob("*"))
    assert not [f for f in files if f.name.startswith(".")]  # no temporary file left behind
    for f in files:
        if f.is_file():
            assert json.loads(f.read_text())["path"] == str(store)
            assert stat.S_IMODE(f.stat().st_mode) == 0o640


def test_the_store_does_not_import_the_catalog():
    import ast

    for module in (REPO / "pcdata" / "store").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any("catalog" in n for n in names), f"{module.name} imports {names}"
