import json
import os

import numpy as np
import pytest

from pcdata import open_store
from pcdata.errors import StoreExistsError
from pcdata.store.writer import content_checksum, prepare_store, read_root_metadata, write_fragment, write_store
from tests.store.conftest import SMALL_CHUNKS, make_clouds, template


def test_store_is_a_zarr_v3_group_with_fragments(store_path, clouds):
    import zarr

    g = zarr.open_group(str(store_path), mode="r")
    assert g.attrs["pcdata"]["status"] == "complete"
    frag = zarr.open_group(str(store_path / "fragments" / "f000000"), mode="r")
    assert frag["points"].shape == (int(clouds.offsets[700]), 3)
    assert frag["points"].chunks == (500, 3)
    assert sorted(os.listdir(store_path / "fragments")) == ["f000000", "f000001", "f000002", "zarr.json"]


def test_fragment_checksums_and_statistics_describe_the_content(store_path, clouds):
    meta = read_root_metadata(store_path)
    assert [f.num_clouds for f in meta.fragments] == [700, 700, 600]
    assert meta.fragments[1].checksum == content_checksum(clouds.slice(700, 1400))
    assert meta.stats["y"].count == clouds.num_points
    assert meta.stats["y"].mean == pytest.approx(clouds.points[:, 1].astype(np.float64).mean(), rel=1e-12)
    assert meta.stats["n"].max == clouds.counts.max()


def test_existing_store_is_not_overwritten_without_permission(store_path, clouds):
    with pytest.raises(StoreExistsError, match="already exists; pass --overwrite"):
        write_store(store_path, clouds, template())


def test_overwrite_keeps_the_old_store_readable_until_the_new_one_is_complete(store_path):
    builder = prepare_store(store_path, template("new").__class__(**{**template("new").__dict__, "expected_fragments": 1}),
                            overwrite=True)
    assert builder.path != store_path
    # Mid-build, the old store is untouched and still complete.
    assert open_store(store_path).num_clouds == 2000
    other = make_clouds(10, seed=5)
    builder.commit(write_fragment(builder.path, "f000000", other))
    builder.finish()
    s = open_store(store_path)
    assert s.num_clouds == 10 and s.read().equals(other)
    assert not builder.path.exists() or builder.path == store_path
    assert [p.name for p in store_path.parent.iterdir()] == ["s"]


def test_a_directory_that_is_not_a_store_is_never_touched(tmp_path, clouds):
    d = tmp_path / "data"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    with pytest.raises(StoreExistsError, match="not a pcdata store"):
        write_store(d, clouds, template(), overwrite=True)
    assert (d / "keep.txt").read_text() == "mine"


def test_interrupted_build_resumes_and_drops_uncommitted_fragments(tmp_path, clouds):
    path = tmp_path / "s"
    t = template().__class__(**{**template().__dict__, "expected_fragments": 3})
    b = prepare_store(path, t)
    b.commit(write_fragment(path, "f000000", clouds.slice(0, 700), chunks=SMALL_CHUNKS))
    write_fragment(path, "f000001", clouds.slice(700, 1400), chunks=SMALL_CHUNKS)  # written, never committed
    (path / "fragments" / ".f000002.tmp-dead").mkdir()  # a killed worker's leftovers
    resumed = prepare_store(path, t)
    assert resumed.resumed and resumed.committed == {"f000000"}
    assert sorted(os.listdir(path / "fragments")) == ["f000000", "zarr.json"]
    with pytest.raises(StoreExistsError, match="other inputs"):
        prepare_store(path, template("different"))


def test_write_fragment_keeps_an_existing_complete_copy(tmp_path, clouds):
    path = tmp_path / "s"
    prepare_store(path, template())
    a = write_fragment(path, "f000000", clouds.slice(0, 10))
    b = write_fragment(path, "f000000", clouds.slice(0, 10))  # a duplicate attempt of the same task
    assert a == b
    assert [p for p in os.listdir(path / "fragments") if p.startswith(".")] == []


def test_root_metadata_is_replaced_atomically(tmp_path, clouds):
    path = tmp_path / "s"
    t = template().__class__(**{**template().__dict__, "expected_fragments": 2})
    b = prepare_store(path, t)
    before = json.loads((path / "zarr.json").read_text())
    b.commit(write_fragment(path, "f000001", clouds.slice(0, 5)))
    after = json.loads((path / "zarr.json").read_text())
    assert before["attributes"]["pcdata"]["fragments"] == []
    assert [f["id"] for f in after["attributes"]["pcdata"]["fragments"]] == ["f000001"]
    assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []


def _tree(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_failed_fragment_write_leaves_no_fragment_and_never_touches_a_complete_copy(tmp_path, clouds, monkeypatch):
    import pcdata.store.writer as writer

    path = tmp_path / "s"
    prepare_store(path, template())
    real_write = writer._write_group

    def write_then_fail(target, c, chunks):
        real_write(target, c, chunks)  # every array written, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write_group", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_fragment(path, "f000000", clouds.slice(0, 10))
    assert sorted(os.listdir(path / "fragments")) == ["zarr.json"]  # nothing half-written, nothing left over
    # A complete copy exists; a duplicate attempt that fails part-way must leave it byte for byte.
    monkeypatch.setattr(writer, "_write_group", real_write)
    write_fragment(path, "f000001", clouds.slice(10, 30))
    before = _tree(path / "fragments" / "f000001")
    monkeypatch.setattr(writer, "_write_group", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_fragment(path, "f000001", clouds.slice(10, 30))
    assert _tree(path / "fragments" / "f000001") == before
    assert sorted(os.listdir(path / "fragments")) == ["f000001", "zarr.json"]


def test_a_failure_in_the_overwrite_swap_keeps_the_old_store_at_its_path(store_path, monkeypatch):
    import pcdata.store.writer as writer

    old_bytes = _tree(store_path)
    t = template("new")
    builder = prepare_store(store_path, t.__class__(**{**t.__dict__, "expected_fragments": 1}), overwrite=True)
    builder.commit(write_fragment(builder.path, "f000000", make_clouds(10, seed=5)))
    real_rename = os.rename

    def rename(src, dst):
        if str(src) == str(builder.path):  # the new store moving into place: the crash point
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(writer.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output"):
        builder.finish()
    monkeypatch.setattr(writer.os, "rename", real_rename)
    assert _tree(store_path) == old_bytes and open_store(store_path).num_clouds == 2000
    assert builder.path.exists()  # the new store is still staged: nothing was deleted


def test_commits_in_any_order_list_the_fragments_in_store_order(tmp_path, clouds):
    path = tmp_path / "s"
    t = template().__class__(**{**template().__dict__, "expected_fragments": 3})
    b = prepare_store(path, t)
    parts = {"f000000": clouds.slice(0, 5), "f000001": clouds.slice(5, 12), "f000002": clouds.slice(12, 20)}
    infos = {k: write_fragment(path, k, v) for k, v in parts.items()}
    b.commit(infos["f000002"])
    b.commit(infos["f000000"], infos["f000001"])  # workers finish out of order
    listed = json.loads((path / "zarr.json").read_text())["attributes"]["pcdata"]["fragments"]
    assert [f["id"] for f in listed] == ["f000000", "f000001", "f000002"]
    b.finish()
    assert open_store(path).read().equals(clouds.slice(0, 20))
