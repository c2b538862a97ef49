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
