import json
import os
from dataclasses import replace

import numpy as np
import pytest

from pcdata import open_store
from pcdata.errors import StoreExistsError
from pcdata.store.metadata import read_root
from pcdata.store.writer import content_checksum, prepare_store, write_store
from tests.store.conftest import SMALL_CHUNKS, fragment_dirs, make_clouds, template


def _planned(n, fingerprint="fp"):
    return replace(template(fingerprint), expected_fragments=n, layout=SMALL_CHUNKS)


def _root(path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def test_store_is_a_zarr_v3_hierarchy_that_zarr_reads_as_pcdata_does(store_path, clouds):
    import zarr

    g = zarr.open_group(str(store_path), mode="r")
    assert g.attrs["pcdata"]["status"] == "complete" and g.attrs["pcdata"]["version"] == 2
    frags = fragment_dirs(store_path)
    assert [f.name for f in frags] == ["f000000000", "f000000001", "f000000002"]
    assert all(f.parent.name == "d000000" for f in frags)  # the fan-out directory of fragments 0-999
    starts = [0, 700, 1400, 2000]
    for k, frag in enumerate(frags):
        z = zarr.open_group(str(frag), mode="r")
        part = clouds.slice(starts[k], starts[k + 1])
        np.testing.assert_array_equal(z["points"][:], part.points)
        np.testing.assert_array_equal(z["offsets"][:], part.offsets)
        np.testing.assert_array_equal(z["cloud/n"][:], part.fields["n"])
        assert z["points"].metadata.dimension_names == ("point", "feature")
        assert z["cloud/pt"].metadata.dimension_names == ("cloud",)
        assert z["points"].attrs["feature_names"] == ["x", "y", "z"] and z["cloud/pt"].attrs["units"] == "GeV"
        assert z["points"].shards == (z["points"].shape[0] + (-z["points"].shape[0]) % 500, 3)
        assert z["points"].chunks == (500, 3)
    # A fragment is a handful of files: a directory, a zarr.json and one shard per array.
    entries = [p for p in frags[0].rglob("*")]
    assert len(entries) == 1 + 3 + 3 + 2 + 2 * 3  # zarr.json; points, offsets; the cloud group; two fields


def test_fragment_checksums_and_statistics_describe_the_content(store_path, clouds):
    store = open_store(store_path)
    assert [f.num_clouds for f in store.fragments] == [700, 700, 600]
    assert store.fragments[1].checksum == content_checksum(clouds.slice(700, 1400))
    assert store.stats["y"].count == clouds.num_points
    assert store.stats["y"].mean == pytest.approx(clouds.points[:, 1].astype(np.float64).mean(), rel=1e-12)
    assert store.stats["n"].max == clouds.counts.max()


def test_the_root_stays_small_and_a_commit_writes_one_new_manifest(tmp_path, clouds):
    path = tmp_path / "s"
    b = prepare_store(path, _planned(60))
    writer = b.writer()
    sizes, logs = [], {}
    for i in range(60):
        b.commit(writer.write(f"f{i:09d}", clouds.slice(i, i + 1)))
        sizes.append((path / "zarr.json").stat().st_size)
        for log in (path / "manifests" / b.generation).glob("log-*"):
            logs.setdefault(log.name, log.read_bytes())
            assert log.read_bytes() == logs[log.name]  # append-only: a committed manifest is never rewritten
    assert len(logs) == 60
    assert max(sizes) - min(sizes) < 16  # the root grows by digits, not by fragments
    meta = b.finish()
    assert [p.name for p in (path / "manifests" / meta.generation).iterdir()] == ["index-00000000.json"]
    assert (path / "zarr.json").stat().st_size < 4096
    assert open_store(path).read().equals(clouds.slice(0, 60))


def test_an_open_store_reads_only_the_index_manifests_it_needs(tmp_path, monkeypatch):
    import pcdata.store.metadata as metadata

    monkeypatch.setattr(metadata, "INDEX_SIZE", 4)
    c = make_clouds(50, seed=2)
    write_store(tmp_path / "s", c, template(), clouds_per_fragment=3)  # 17 fragments: 5 index manifests
    root = _root(tmp_path / "s")["pcdata"]
    assert [p["fragments"] for p in root["manifests"]["index"]] == [4, 4, 4, 4, 1]
    read = []
    real = metadata.read_index_part
    monkeypatch.setattr("pcdata.store.reader.read_index_part", lambda *a: read.append(a[2].path) or real(*a))
    s = open_store(tmp_path / "s")
    assert read == []  # opening reads the root alone
    assert s.take([40, 41]).equals(c.take([40, 41]))  # fragments 13 (part 3)
    assert read == [root["manifests"]["index"][3]["path"]]
    assert s.read().equals(c)


def test_existing_store_is_not_overwritten_without_permission(store_path, clouds):
    with pytest.raises(StoreExistsError, match="already exists; pass --overwrite"):
        write_store(store_path, clouds, template())


def test_overwrite_keeps_the_old_store_readable_until_the_new_one_is_complete(store_path):
    old_gen = _root(store_path)["pcdata"]["generation"]
    builder = prepare_store(store_path, _planned(1, "new"), overwrite=True)
    assert builder.path == store_path and builder.generation != old_gen
    # Mid-build, the old store is untouched and still complete; the build is recorded beside it.
    assert open_store(store_path).num_clouds == 2000
    assert _root(store_path)["pcdata_build"]["generation"] == builder.generation
    other = make_clouds(10, seed=5)
    builder.commit(builder.writer().write("f000000000", other))
    assert open_store(store_path).num_clouds == 2000
    builder.finish()
    s = open_store(store_path)
    assert s.num_clouds == 10 and s.read().equals(other)
    assert "pcdata_build" not in _root(store_path)
    assert sorted(p.name for p in (store_path / "fragments").iterdir()) == [builder.generation, "zarr.json"]
    assert [p.name for p in store_path.parent.iterdir()] == ["s"]
    assert sorted(p.name for p in store_path.iterdir()) == ["fragments", "manifests", "zarr.json"]  # lock released


def test_a_directory_that_is_not_a_store_is_never_touched(tmp_path, clouds):
    d = tmp_path / "data"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    with pytest.raises(StoreExistsError, match="not a pcdata store"):
        write_store(d, clouds, template(), overwrite=True)
    assert sorted(os.listdir(d)) == ["keep.txt"] and (d / "keep.txt").read_text() == "mine"


def test_interrupted_build_resumes_and_drops_what_was_never_committed(tmp_path, clouds):
    path = tmp_path / "s"
    b = prepare_store(path, _planned(3))
    w = b.writer()
    b.commit(w.write("f000000000", clouds.slice(0, 700)))
    w.write("f000000001", clouds.slice(700, 1400))  # written, never committed
    fan = fragment_dirs(path)[0].parent
    (fan / ".f000000002.tmp-dead").mkdir()  # a killed worker's leftovers
    (path / "manifests" / b.generation / "log-00000001.json").write_text("{}")  # a log the root never named
    (path / ".zarr.json.tmp-0123").write_text("{}")  # a root rewrite killed before its rename
    b.close()  # the process ends without finishing
    resumed = prepare_store(path, _planned(3))
    assert resumed.resumed and resumed.committed == {"f000000000"} and resumed.generation == b.generation
    assert sorted(os.listdir(fan)) == ["f000000000", "zarr.json"]
    assert sorted(os.listdir(path / "manifests" / b.generation)) == ["log-00000000.json"]
    assert not (path / ".zarr.json.tmp-0123").exists()
    w = resumed.writer()
    resumed.commit(w.write("f000000002", clouds.slice(1400, 2000)), w.write("f000000001", clouds.slice(700, 1400)))
    resumed.finish()
    assert open_store(path).read().equals(clouds)
    with pytest.raises(StoreExistsError, match="already exists"):
        prepare_store(path, _planned(3, "different"))


def test_resumed_statistics_equal_an_uninterrupted_build(tmp_path, clouds):
    whole = write_store(tmp_path / "a", clouds, replace(template(), layout=SMALL_CHUNKS), clouds_per_fragment=700)
    b = prepare_store(tmp_path / "b", _planned(3))
    w = b.writer()
    b.commit(w.write("f000000002", clouds.slice(1400, 2000)))
    b.close()
    b = prepare_store(tmp_path / "b", _planned(3))
    w = b.writer()
    b.commit(w.write("f000000001", clouds.slice(700, 1400)))
    b.commit(w.write("f000000000", clouds.slice(0, 700)))
    resumed = b.finish()
    assert resumed.stats == whole.stats and resumed.num_clouds == whole.num_clouds


def test_a_duplicate_fragment_write_keeps_the_existing_complete_copy(tmp_path, clouds):
    path = tmp_path / "s"
    b = prepare_store(path, _planned(1))
    a = b.writer().write("f000000000", clouds.slice(0, 10))
    again = b.writer().write("f000000000", clouds.slice(0, 10))  # a duplicate attempt of the same task
    assert a == again
    assert [p for p in os.listdir(fragment_dirs(path)[0].parent) if p.startswith(".")] == []


def _tree(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_failed_fragment_write_leaves_no_fragment_and_never_touches_a_complete_copy(tmp_path, clouds, monkeypatch):
    from pcdata.store.writer import FragmentWriter

    path = tmp_path / "s"
    b = prepare_store(path, _planned(2))
    w = b.writer()
    real_write = FragmentWriter._write_group

    def write_then_fail(self, target, fid, c):
        real_write(self, target, fid, c)  # every array written, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FragmentWriter, "_write_group", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        w.write("f000000000", clouds.slice(0, 10))
    fan = path / "fragments" / b.generation / "d000000"
    assert sorted(os.listdir(fan)) == ["zarr.json"]  # nothing half-written, nothing left over
    # A complete copy exists; a duplicate attempt that fails part-way must leave it byte for byte.
    monkeypatch.setattr(FragmentWriter, "_write_group", real_write)
    w.write("f000000001", clouds.slice(10, 30))
    before = _tree(fan / "f000000001")
    monkeypatch.setattr(FragmentWriter, "_write_group", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        w.write("f000000001", clouds.slice(10, 30))
    assert _tree(fan / "f000000001") == before
    assert sorted(os.listdir(fan)) == ["f000000001", "zarr.json"]


def test_a_failure_while_finishing_a_replacement_keeps_the_old_store(store_path, monkeypatch):
    import pcdata.store.writer as writer

    old_bytes = _tree(store_path)
    builder = prepare_store(store_path, _planned(1, "new"), overwrite=True)
    builder.commit(builder.writer().write("f000000000", make_clouds(10, seed=5)))

    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(writer, "write_root", fail)  # the switch itself fails
    with pytest.raises(OSError, match="Input/output"):
        builder.finish()
    monkeypatch.undo()
    builder.close()
    s = open_store(store_path)
    assert s.num_clouds == 2000 and s.verify() == []
    assert {k: v for k, v in _tree(store_path).items() if k in old_bytes and not k.startswith("zarr.json")} == \
        {k: v for k, v in old_bytes.items() if not k.startswith("zarr.json")}


def test_commits_in_any_order_give_the_store_in_fragment_order(tmp_path, clouds):
    path = tmp_path / "s"
    b = prepare_store(path, _planned(3))
    w = b.writer()
    parts = {"f000000000": clouds.slice(0, 5), "f000000001": clouds.slice(5, 12), "f000000002": clouds.slice(12, 20)}
    infos = {k: w.write(k, v) for k, v in parts.items()}
    b.commit(infos["f000000002"])
    b.commit(infos["f000000000"], infos["f000000001"])  # workers finish out of order
    b.finish()
    s = open_store(path)
    assert [f.id for f in s.fragments] == list(parts)
    assert s.read().equals(clouds.slice(0, 20))
    assert read_root(path).meta.num_fragments == 3


# -- in-process tests of the build's rules (the mutation run of writer.py runs these, no forks) --------


def test_the_content_checksum_is_sha256_of_the_documented_bytes(clouds):
    import hashlib

    part = clouds.slice(5, 9)
    h = hashlib.sha256()
    h.update(part.points.astype("<f4").tobytes())
    h.update(part.offsets.astype("<i8").tobytes())
    for name in ("pt", "n"):  # in the clouds' field order, each named with its dtype
        v = part.fields[name]
        h.update(f"{name}:{v.dtype.str}".encode() + v.tobytes())
    assert content_checksum(part) == "sha256:" + h.hexdigest()
    wide = type(part)(part.points.astype(np.float64), part.offsets.astype(np.int32), part.fields, part.point_features)
    assert content_checksum(wide) == content_checksum(part)  # of the content, not of the input's dtypes
    renamed = type(part)(part.points, part.offsets, {"pt": part.fields["pt"], "m": part.fields["n"]}, part.point_features)
    assert content_checksum(renamed) != content_checksum(part)


def test_a_fragment_is_fsynced_unless_asked_not_to(tmp_path, clouds, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    b = prepare_store(tmp_path / "s", _planned(2))
    synced.clear()
    b.writer().write("f000000000", clouds.slice(0, 10))
    assert len(synced) >= 4  # the points, offsets and two field shards, and the fan directory
    synced.clear()
    info = b.writer(fsync=False).write("f000000001", clouds.slice(10, 20))
    assert synced == [] and b.writer(fsync=False).fsync is False
    b.commit(info)
    b.close()


def test_a_fragment_that_is_not_what_the_store_declares_is_refused(tmp_path, clouds):
    from pcdata import Clouds

    b = prepare_store(tmp_path / "s", _planned(1))
    w = b.writer()
    part = clouds.slice(0, 10)
    other = Clouds(part.points, part.offsets, part.fields, ("x", "y", "w"))
    with pytest.raises(ValueError, match=r"^fragment f000000000: point features \('x', 'y', 'w'\), the store has \('x', 'y', 'z'\)$"):
        w.write("f000000000", other)
    missing = Clouds(part.points, part.offsets, {"pt": part.fields["pt"]}, part.point_features)
    with pytest.raises(ValueError, match=r"^fragment f000000000: cloud fields \['pt'\], the store has \['pt', 'n'\]$"):
        w.write("f000000000", missing)
    wrong = Clouds(part.points, part.offsets, {**part.fields, "n": part.fields["n"].astype(np.int64)}, part.point_features)
    with pytest.raises(ValueError, match=r"^fragment f000000000: cloud field 'n' is int64, the store declares int32$"):
        w.write("f000000000", wrong)
    assert sorted(os.listdir(tmp_path / "s" / "fragments" / b.generation)) == ["zarr.json"]  # nothing written
    wide = Clouds(part.points.astype(np.float64), part.offsets, part.fields, part.point_features)
    info = w.write("f000000000", wide)  # float64 points are stored as float32
    assert info == w.write("f000000000", part)
    assert (info.num_clouds, info.num_points, info.max_points) == (10, part.num_points, int(part.counts.max()))
    assert info.source == {} and w.write("f000000000", part, source={"file": "a"}).source == {"file": "a"}
    b.commit(info)
    b.finish()
    s = open_store(tmp_path / "s")
    assert s.read().equals(part) and s.stats["z"].count == part.num_points


def test_commits_refuse_conflicts_and_fragments_outside_the_plan_and_finish_counts_them(tmp_path, clouds):
    from pcdata.errors import StoreFormatError

    path = tmp_path / "s"
    b = prepare_store(path, _planned(2))
    w = b.writer()
    first = w.write("f000000000", clouds.slice(0, 10))
    b.commit(first, first)  # the same fragment twice in one batch: listed once
    assert b.meta.num_fragments == 1 and b.meta.num_clouds == 10 and b.meta.manifests.log == 1
    b.commit(first)  # again, same content: nothing new written
    assert b.meta.manifests.log == 1 and b.committed == {"f000000000"}
    changed = replace(first, checksum="sha256:" + "0" * 64)
    with pytest.raises(StoreFormatError, match=rf"^{path}: fragment f000000000 committed twice with different content$"):
        b.commit(changed)
    with pytest.raises(StoreFormatError, match=rf"^{path}: fragment f000000002 is outside the planned 2$"):
        b.commit(w.write("f000000002", clouds.slice(10, 20)))
    with pytest.raises(RuntimeError, match=rf"^{path}: 1 of 2 fragments committed$"):
        b.finish()
    second = w.write("f000000001", clouds.slice(10, 25))
    b.commit(second)
    assert (b.meta.num_fragments, b.meta.num_clouds, b.meta.num_points) == (2, 25, clouds.slice(0, 25).num_points)
    meta = b.finish(attrs={"note": "x"})
    assert meta.status == "complete" and meta.attrs == {"note": "x"} and meta.stats["n"].max == clouds.counts[:25].max()
    assert sorted(os.listdir(path)) == ["fragments", "manifests", "zarr.json"]  # lock released, logs gone


def test_abort_removes_a_new_store_and_restores_a_replaced_one(tmp_path, store_path):
    new = prepare_store(tmp_path / "new", _planned(1))
    new.commit(new.writer().write("f000000000", make_clouds(5)))
    new.abort()
    assert not (tmp_path / "new").exists()
    before = _root(store_path)
    b = prepare_store(store_path, _planned(1, "other"), overwrite=True)
    b.commit(b.writer().write("f000000000", make_clouds(5)))
    b.abort()
    assert _root(store_path) == before and open_store(store_path).num_clouds == 2000
    assert sorted(p.name for p in (store_path / "fragments").iterdir()) == [before["pcdata"]["generation"], "zarr.json"]
    assert sorted(os.listdir(store_path)) == ["fragments", "manifests", "zarr.json"]  # no lock left


def test_a_failed_write_store_leaves_nothing_and_a_failed_resume_keeps_the_build(tmp_path, monkeypatch):
    from pcdata.store.writer import FragmentWriter

    c = make_clouds(30, seed=4)
    real = FragmentWriter.write

    def fail_second(self, fid, clouds, **kw):
        if fid == "f000000001":
            raise OSError(5, "Input/output error")
        return real(self, fid, clouds, **kw)

    monkeypatch.setattr(FragmentWriter, "write", fail_second)
    with pytest.raises(OSError, match="Input/output"):
        write_store(tmp_path / "s", c, template(), clouds_per_fragment=10)
    assert not (tmp_path / "s").exists() and os.listdir(tmp_path) == []  # a new store: removed whole
    b = prepare_store(tmp_path / "s", replace(template(), expected_fragments=3))
    b.commit(b.writer().write("f000000000", c.slice(0, 10)))
    b.close()  # interrupted with one fragment committed
    with pytest.raises(OSError, match="Input/output"):
        write_store(tmp_path / "s", c, template(), clouds_per_fragment=10)
    assert read_root(tmp_path / "s").meta.num_fragments == 1  # a resumed build keeps what it had
    monkeypatch.undo()
    meta = write_store(tmp_path / "s", c, template(), clouds_per_fragment=10)
    assert meta.num_fragments == meta.expected_fragments == 3
    s = open_store(tmp_path / "s")
    assert [f.source for f in s.fragments] == [{}, {"start": 10, "stop": 20}, {"start": 20, "stop": 30}]  # (0: by hand)
    assert s.read().equals(c)
    assert write_store(tmp_path / "e", make_clouds(0), template()).num_fragments == 1  # no clouds: one empty fragment
    assert write_store(tmp_path / "t", c, template(), clouds_per_fragment=29).num_fragments == 2


def test_an_interrupted_build_of_other_inputs_is_refused_or_replaced(tmp_path, clouds):
    path = tmp_path / "s"
    b = prepare_store(path, _planned(2, "first"))
    b.commit(b.writer().write("f000000000", clouds.slice(0, 10)))
    b.close()
    with pytest.raises(StoreExistsError, match=rf"^{path}: holds an interrupted ingest of other inputs or options; "
                                               "remove it or pass --overwrite$"):
        prepare_store(path, _planned(1, "second"))
    fresh = prepare_store(path, _planned(1, "second"), overwrite=True)
    assert not fresh.resumed and fresh.committed == set() and fresh.generation != b.generation
    assert sorted(p.name for p in (path / "fragments").iterdir()) == [fresh.generation, "zarr.json"]
    assert sorted(p.name for p in (path / "manifests").iterdir()) == [fresh.generation]
    fresh.commit(fresh.writer().write("f000000000", clouds.slice(0, 3)))
    fresh.finish()
    assert open_store(path).read().equals(clouds.slice(0, 3))


def test_an_interrupted_replacement_resumes_beside_the_old_store(store_path):
    first = prepare_store(store_path, _planned(2, "new"), overwrite=True)
    first.commit(first.writer().write("f000000000", make_clouds(5, seed=6)))
    first.close()  # killed mid-replacement: the old store is still the one readers see
    assert open_store(store_path).num_clouds == 2000
    again = prepare_store(store_path, _planned(2, "new"), overwrite=True)
    assert again.resumed and again.generation == first.generation and again.committed == {"f000000000"}
    assert again.replacing is not None
    again.commit(again.writer().write("f000000001", make_clouds(7, seed=7)))
    again.finish()
    assert open_store(store_path).num_clouds == 12
    with pytest.raises(StoreExistsError, match="already exists; pass --overwrite"):
        prepare_store(store_path, _planned(1, "new"))


def test_creations_killed_before_their_rename_are_cleaned_when_stale(tmp_path):
    import json
    import socket
    import subprocess
    import sys
    import time

    from pcdata.store.lock import LOCK_NAME, StoreLock

    old = tmp_path / ".s.pcdata-new-old"
    old.mkdir()
    os.utime(old, (time.time() - 120, time.time() - 120))  # no lock, two minutes old: stale
    young = tmp_path / ".s.pcdata-new-young"
    young.mkdir()  # no lock yet, just made: maybe a live creation
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    locked_dead = tmp_path / ".s.pcdata-new-dead"
    locked_dead.mkdir()
    (locked_dead / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "t",
                                                     "started": None, "time": "then", "command": "killed"}))
    live = tmp_path / ".s.pcdata-new-live"
    live.mkdir()
    StoreLock.create(live, "live")  # this process: alive
    write_store(tmp_path / "s", make_clouds(5), template())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.pcdata-new-live", ".s.pcdata-new-young", "s"]


def test_a_path_that_is_a_file_or_an_empty_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreExistsError, match=rf"^{f}: exists and is not a pcdata store; refusing to write there$"):
        write_store(f, make_clouds(5), template(), overwrite=True)
    assert f.read_text() == "x"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_store(empty, make_clouds(5), template())
    assert open_store(empty).num_clouds == 5
    nested = tmp_path / "a" / "b" / "s"  # missing parents are made
    write_store(nested, make_clouds(5), template())
    assert open_store(nested).num_clouds == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_fragment_group_documents_itself_and_every_shard_is_fsynced(tmp_path, clouds, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    b = prepare_store(tmp_path / "s", _planned(1))
    fan = tmp_path / "s" / "fragments" / b.generation / "d000000"
    fan.mkdir()  # a fan directory left without its zarr.json (killed in between): completed, not an error
    b.commit(b.writer().write("f000000000", clouds.slice(0, 10)))
    frag = fan / "f000000000"
    for shard in ("points/c.0.0", "offsets/c.0", "cloud/pt/c.0", "cloud/n/c.0"):  # in the group before its rename
        assert any(p.startswith(f"{fan}/.f000000000.tmp-") and p.endswith(f"/{shard}") for p in synced), shard
    doc = lambda p: json.loads((p / "zarr.json").read_text())  # noqa: E731
    assert doc(fan) == doc(tmp_path / "s" / "fragments") == {"zarr_format": 3, "node_type": "group", "attributes": {}}
    assert doc(frag)["attributes"] == {"pcdata": {"fragment": "f000000000", "num_clouds": 10,
                                                  "num_points": clouds.slice(0, 10).num_points}}
    assert doc(frag / "cloud")["node_type"] == "group"
    pts, off, pt = doc(frag / "points"), doc(frag / "offsets"), doc(frag / "cloud" / "pt")
    assert pts["attributes"] == {"feature_names": ["x", "y", "z"], "units": ["", "", ""], "descriptions": ["", "", ""]}
    assert off["dimension_names"] == ["cloud_edge"]
    assert off["attributes"] == {"description": "points of cloud i are rows offsets[i]:offsets[i+1] of points"}
    assert pt["attributes"] == {"units": "GeV", "description": ""} and pt["dimension_names"] == ["cloud"]
