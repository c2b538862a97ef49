import json
import shutil

import numpy as np
import pytest

from pcdata import Clouds, open_store
from pcdata.errors import (NotAStoreError, SplitNotFoundError, StoreFormatError, StoreIncompleteError,
                           StoreNotFoundError)
from pcdata.store.writer import prepare_store
from pcdata.store import ChunkSpec, write_store
from tests.store.conftest import SMALL_CHUNKS, fragment_dirs, make_clouds, shard, shard_entries, template


def test_counts_features_and_reads(store_path, clouds):
    s = open_store(store_path)
    assert (s.num_clouds, s.num_points) == (len(clouds), clouds.num_points)
    assert s.point_features == ("x", "y", "z") and s.cloud_features == ("pt", "n")
    np.testing.assert_array_equal(s.offsets, clouds.offsets)
    one = s[1234]
    np.testing.assert_array_equal(one["points"], clouds.cloud(1234)["points"])
    assert one["n"] == clouds.fields["n"][1234]
    assert s[650:760].equals(clouds.slice(650, 760))  # spans two fragments
    idx = np.array([1999, 3, 3, 700, 0])
    assert s.take(idx).equals(clouds.take(idx))
    ascending = np.array([3, 3, 650, 699, 700, 700, 1999])  # sorted, with repeats, across fragments
    assert s.take(ascending).equals(clouds.take(ascending))


def test_views_agree_with_numpy(store_path):
    import awkward as ak

    s = open_store(store_path)
    padded = s.to_numpy()
    arr = s.to_awkward()
    table = s.to_arrow()
    counts = padded.mask.sum(1)
    assert ak.to_list(ak.num(arr.points, axis=1)) == counts.tolist()
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(arr.points.z)), padded.points[..., 2][padded.mask])
    np.testing.assert_array_equal(np.concatenate(table.column("y").to_pylist()).astype(np.float32),
                                  padded.points[..., 1][padded.mask])
    batches = list(s.iter_arrow_batches(300, split="val"))
    assert sum(b.num_rows for b in batches) == len(s.split_indices("val"))


def test_splits_are_disjoint_and_cover_the_store(store_path):
    s = open_store(store_path)
    sets = [set(s.split_indices(n).tolist()) for n in ("train", "val", "test")]
    assert sum(map(len, sets)) == s.num_clouds and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert s.split("test").equals(s.take(s.split_indices("test")))
    with pytest.raises(KeyError, match="no split 'dev'"):
        s.split_indices("dev")


def test_reads_only_the_chunks_it_needs(store_path, clouds):
    # Damage every points chunk of fragment 1 except the one holding cloud i: reading that cloud
    # still works, so no other chunk was read; a full read of the fragment fails.
    local = clouds.offsets[700:1401] - clouds.offsets[700]
    i = next(k for k in range(700, 1400)
             if local[k - 700 + 1] > local[k - 700] and local[k - 700] // 500 == (local[k - 700 + 1] - 1) // 500)
    keep = int(local[i - 700] // 500)
    path = shard(store_path, 1)
    data = bytearray(path.read_bytes())
    damaged = 0
    for c, (offset, nbytes) in enumerate(shard_entries(path)):
        if c != keep:
            data[offset : offset + nbytes] = b"g" * nbytes
            damaged += 1
    path.write_bytes(bytes(data))
    assert damaged > 3
    s = open_store(store_path)
    np.testing.assert_array_equal(s[i]["points"], clouds.cloud(i)["points"])
    assert s.read(0, 700).equals(clouds.slice(0, 700))
    problems = s.verify()
    assert len(problems) == 1 and problems[0].startswith("fragment f000000001: unreadable")


def test_verify_detects_changed_data(store_path):
    import zarr

    s = open_store(store_path)
    assert s.verify() == []
    arr = zarr.open_array(str(shard(store_path, 2).parent), mode="r+")  # zarr rewrites the shard, validly
    arr[3] = arr[3] + 1
    assert open_store(store_path).verify() == ["fragment f000000002: checksum mismatch"]


@pytest.mark.parametrize("array", ["points", "offsets", "cloud/pt"])
def test_a_missing_shard_is_an_error_on_every_read(store_path, array):
    path = shard(store_path, 1, array)
    path.unlink()
    s = open_store(store_path)
    message = f"{store_path}: fragment f000000001: missing chunk file \\({path}\\)"
    for read in (lambda: s[800], lambda: s.read(), lambda: s.split("train"), lambda: s.to_numpy(),
                 lambda: s.to_arrow(), lambda: list(s.iter_fragments())):
        with pytest.raises(StoreFormatError, match=message):
            read()
    assert s[5]["points"].shape[1] == 3  # the other fragments read as before
    assert s.verify() == [f"fragment f000000001: unreadable ({store_path}: fragment f000000001: missing chunk file ({path}))"]


def test_damaged_offsets_are_an_error(store_path):
    import zarr

    arr = zarr.open_array(str(shard(store_path, 0, "offsets").parent), mode="r+")
    arr[5] = 10**9
    with pytest.raises(StoreFormatError, match="fragment f000000000: damaged offsets"):
        open_store(store_path).read()


def test_open_errors_are_clear(tmp_path, store_path):
    with pytest.raises(StoreNotFoundError, match="no such store"):
        open_store(tmp_path / "nope")
    with pytest.raises(NotAStoreError, match="not a pcdata store"):
        open_store(tmp_path)
    doc = json.loads((store_path / "zarr.json").read_text())
    doc["attributes"]["pcdata"]["version"] = 99
    (store_path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreFormatError, match="version 99 is not supported"):
        open_store(store_path)


def test_incomplete_store_shows_only_committed_fragments(tmp_path, clouds):
    path = tmp_path / "s"
    t = template().__class__(**{**template().__dict__, "expected_fragments": 2})
    b = prepare_store(path, t)
    b.commit(b.writer().write("f000000000", clouds.slice(0, 100)))
    b.writer().write("f000000001", clouds.slice(100, 200))  # not committed
    with pytest.raises(StoreIncompleteError, match="1 of 2 fragments committed"):
        open_store(path)
    s = open_store(path, allow_incomplete=True)
    assert s.num_clouds == 100 and s.read().equals(clouds.slice(0, 100))


def test_indices_are_a_split_or_every_cloud(store_path):
    s = open_store(store_path)
    assert np.array_equal(s.indices(), np.arange(s.num_clouds))
    assert np.array_equal(s.indices("train"), s.split_indices("train"))
    with pytest.raises(KeyError, match="no split 'nope'"):
        s.indices("nope")


def test_a_format_1_store_opens_read_only(store_v1, clouds):
    s = open_store(store_v1)
    expected = make_clouds(300, seed=3)
    assert s.meta.version == 1 and s.num_clouds == 300 and [f.id for f in s.fragments] == ["f000000", "f000001", "f000002"]
    assert s.read().equals(expected) and s.take([299, 0, 130]).equals(expected.take([299, 0, 130]))
    assert s.verify() == [] and s.stats["x"].count == expected.num_points
    with pytest.raises(Exception, match="already exists; pass --overwrite"):
        prepare_store(store_v1, template("v1-fixture"))


def test_cached_fragments_are_bounded_in_bytes_and_evicted_ones_read_again(tmp_path, clouds, monkeypatch):
    import pcdata.store.reader as reader

    path = tmp_path / "many"
    write_store(path, clouds, template(), clouds_per_fragment=50, chunks=SMALL_CHUNKS)  # 40 fragments
    store = open_store(path)
    # 50 clouds of 8 (offsets) + 4 + 4 (fields) bytes: 800 bytes a fragment; a 16 kB budget holds 20
    monkeypatch.setattr(reader, "_CACHE_BYTES", 16_000)
    assert store._cache_limit == 20
    ids = np.random.default_rng(0).permutation(len(clouds))
    for _ in range(2):
        starts, counts = store.point_ranges(ids)
        np.testing.assert_array_equal(starts, clouds.offsets[ids])
        np.testing.assert_array_equal(counts, clouds.counts[ids])
        np.testing.assert_array_equal(store.fields_of(ids, ["pt", "n"]),
                                      np.stack([clouds.fields["pt"][ids], clouds.fields["n"][ids]], axis=1))
        assert len(store._cache) == 20
    monkeypatch.setattr(reader, "_CACHE_BYTES", 1)
    assert open_store(path)._cache_limit == 16  # never fewer than 16


def test_describe_is_the_documented_summary(store_path, clouds):
    from pcdata.store.splits import split_sizes

    s = open_store(store_path)
    d = s.describe()
    m = s.meta
    sizes = split_sizes(len(clouds), m.splits)
    assert d == {
        "path": str(store_path), "format": m.format, "version": 2, "kind": "events", "coords": "none",
        "status": "complete", "num_clouds": 2000, "num_points": clouds.num_points,
        "points_per_cloud": {"mean": float(clouds.counts.mean()), "max": int(clouds.counts.max())},
        "point_features": [f.to_dict() for f in m.point_features],
        "cloud_features": [{"name": "pt", "unit": "GeV", "dtype": "float32", "description": ""},
                           {"name": "n", "unit": "", "dtype": "int32", "description": ""}],
        "splits": {"seed": m.splits.seed, "method": m.splits.method,
                   "train": {"fraction": 0.7, "count": sizes["train"]}, "val": {"fraction": 0.15, "count": sizes["val"]},
                   "test": {"fraction": 0.15, "count": sizes["test"]}},
        "stats": {k: v.to_dict() for k, v in m.stats.items()}, "num_fragments": 3,
        "provenance": m.provenance.to_dict(), "attrs": {},
    }
    assert sum(sizes.values()) == 2000 and set(d["stats"]) == {"x", "y", "z", "pt", "n"}
    assert repr(s) == f"<Store {str(store_path)!r} kind=events clouds=2000 points={clouds.num_points} features=['x', 'y', 'z']>"
    assert len(s) == 2000 and s.complete and s.kind == "events" and s.coords == "none"
    assert s.max_points == int(clouds.counts.max()) and s.num_fragments == 3
    np.testing.assert_array_equal(s.counts, clouds.counts)
    np.testing.assert_array_equal(s.fragment_starts, [0, 700, 1400, 2000])
    np.testing.assert_array_equal(s.point_starts, clouds.offsets[[0, 700, 1400, 2000]])


def test_an_empty_store_describes_itself_without_numbers(tmp_path):
    write_store(tmp_path / "e", make_clouds(0), template())
    s = open_store(tmp_path / "e")
    d = s.describe()
    assert d["points_per_cloud"] == {"mean": None, "max": None} and d["num_clouds"] == 0
    assert s.max_points == 0 and len(s.read()) == 0 and s.field("pt").shape == (0,)
    assert s.take([]).points.shape == (0, 3) and s.take([]).fields["n"].shape == (0,)


def test_indexing_reads_in_the_order_asked_with_negative_indices_and_steps(store_path, clouds):
    s = open_store(store_path)
    assert s[10:1500:7].equals(clouds.take(np.arange(10, 1500, 7)))
    assert s[::-1].equals(clouds.take(np.arange(1999, -1, -1)))
    assert s[-5:].equals(clouds.slice(1995, 2000)) and s[1990:5000].equals(clouds.slice(1990, 2000))
    assert s.take([-1, 0, -2000]).equals(clouds.take([1999, 0, 0]))
    assert s.read(1500, 1400).points.shape == (0, 3)  # an empty range
    for bad in ([2000], [-2001], [0, 5000]):
        with pytest.raises(IndexError, match="^cloud index out of range for a store of 2000 clouds$"):
            s.take(bad)
    one = s.cloud(-1)
    np.testing.assert_array_equal(one["points"], clouds.cloud(1999)["points"])
    part = s.take([700, 3], fields=["n"])
    assert list(part.fields) == ["n"] and part.equals(clouds.take([700, 3]).__class__(
        clouds.take([700, 3]).points, clouds.take([700, 3]).offsets, {"n": clouds.fields["n"][[700, 3]]}, clouds.point_features))
    with pytest.raises(KeyError, match=r"no cloud field 'charge' \(has pt, n\)"):
        s.take([1], fields=["charge"])
    with pytest.raises(KeyError, match="no cloud field 'charge'"):
        s.field("charge")
    np.testing.assert_array_equal(s.field("n"), clouds.fields["n"])


def test_point_ranges_and_fields_of_any_order(store_path, clouds):
    s = open_store(store_path)
    idx = np.array([1999, 5, 700, 699, 5, 1400])
    starts, counts = s.point_ranges(idx)
    np.testing.assert_array_equal(starts, clouds.offsets[idx])
    np.testing.assert_array_equal(counts, clouds.counts[idx])
    assert starts.dtype == counts.dtype == np.int64
    table = s.fields_of(idx, ["n", "pt"])
    assert table.dtype == np.float32 and table.shape == (6, 2)
    np.testing.assert_array_equal(table, np.stack([clouds.fields["n"][idx], clouds.fields["pt"][idx]], 1).astype(np.float32))
    assert s.fields_of(idx[:0], ["pt"]).shape == (0, 1)
    frags = list(s.iter_fragments())
    assert [len(f) for f in frags] == [700, 700, 600] and frags[1].equals(clouds.slice(700, 1400))


def test_read_points_clips_to_the_store_and_checks_its_buffer(store_path, clouds):
    s = open_store(store_path)
    n = clouds.num_points
    np.testing.assert_array_equal(s.read_points(-10, 5), clouds.points[:5])
    np.testing.assert_array_equal(s.read_points(n - 3, n + 100), clouds.points[n - 3 :])
    assert s.read_points(7, 7).shape == (0, 3) and s.read_points(9, 2).shape == (0, 3)
    a = int(clouds.offsets[699]) - 4  # across both fragment boundaries
    b = int(clouds.offsets[1401]) + 4
    out = np.full((b - a, 3), -1, np.float32)
    assert s.read_points(a, b, out) is out
    np.testing.assert_array_equal(out, clouds.points[a:b])
    for wrong in (np.zeros((b - a, 2), np.float32), np.zeros((b - a + 1, 3), np.float32),
                  np.zeros((3, b - a), np.float32).T):
        with pytest.raises(ValueError, match=rf"^out must be C-contiguous float32 \({b - a}, 3\)"):
            s.read_points(a, b, wrong)
    assert s.map_points() is None  # lz4 chunks: nothing to map


@pytest.mark.parametrize("offsets, what", [([1, 5, 9], "first"), ([0, 5, 8], "last"), ([0, 6, 3, 9], "falling")])
def test_every_kind_of_damaged_offsets_is_named(tmp_path, offsets, what):
    import zarr

    from pcdata import Clouds

    n = len(offsets) - 1
    c = Clouds(np.zeros((9, 3), np.float32), np.array([0, 4, 9] if n == 2 else [0, 3, 6, 9], np.int64),
               {"pt": np.zeros(n, np.float32), "n": np.zeros(n, np.int32)}, ("x", "y", "z"))
    write_store(tmp_path / "s", c, template())
    arr = zarr.open_array(str(shard(tmp_path / "s", 0, "offsets").parent), mode="r+")
    arr[:] = np.array(offsets, np.int64)
    with pytest.raises(StoreFormatError, match=r"fragment f000000000: damaged offsets \(they must rise from 0 to 9\)"):
        open_store(tmp_path / "s").read()


def test_a_file_or_a_root_that_disagrees_with_its_manifests_is_refused(tmp_path, store_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotAStoreError, match=rf"^{f}: not a pcdata store \(a file, expected a Zarr store directory\)$"):
        open_store(f)
    with pytest.raises(NotAStoreError, match=rf"^{tmp_path}: not a pcdata store \(no zarr.json with pcdata metadata\)$"):
        open_store(tmp_path)
    doc = json.loads((store_path / "zarr.json").read_text())
    doc["attributes"]["pcdata"]["num_clouds"] += 1
    (store_path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreFormatError, match=r"the manifests list 2000 clouds and \d+ points, the root metadata 2001 and \d+$"):
        open_store(store_path)


# -- edges the mutation run found untested ------------------------------------------------------------

def test_a_store_of_many_index_manifests_reads_across_them(tmp_path, monkeypatch):
    import pcdata.store.metadata as metadata

    monkeypatch.setattr(metadata, "INDEX_SIZE", 4)
    c = make_clouds(90, seed=4)
    path = tmp_path / "s"
    write_store(path, c, template(), clouds_per_fragment=6, chunks=ChunkSpec(points_rows=16, clouds=4))
    s = open_store(path)
    assert [p.fragments for p in s.meta.manifests.index] == [4, 4, 4, 3]  # fragments 0-3, 4-7, 8-11, 12-14
    # Each read opens a fresh store: the first manifest it reads is then a later one.
    idx = np.array([89, 0, 50, 24, 23, 48, 47, 72, 71, 30])  # both sides of each manifest's first cloud
    assert open_store(path).take(idx).equals(c.take(idx))
    assert open_store(path).take(np.sort(idx)).equals(c.take(np.sort(idx)))
    assert open_store(path)[60:80].equals(c.slice(60, 80)) and s.read().equals(c)
    p2, p3 = int(c.offsets[48]), int(c.offsets[72])  # the first points of manifests 2 and 3
    for a, b in ((p2, p2 + 5), (p2 - 3, p3 + 3), (p3 + 1, c.num_points), (0, c.num_points), (p3, p3 + 1)):
        out = np.full((b - a, 3), np.nan, np.float32)
        np.testing.assert_array_equal(open_store(path).read_points(a, b, out), c.points[a:b])
    starts, counts = open_store(path).point_ranges(idx)
    np.testing.assert_array_equal(starts, c.offsets[idx])
    np.testing.assert_array_equal(counts, c.counts[idx])
    np.testing.assert_array_equal(open_store(path).fields_of(idx, ["n"])[:, 0], c.fields["n"][idx])
    np.testing.assert_array_equal(s.offsets, c.offsets)
    assert [f.id for f in s.fragments] == [f"f{k:09d}" for k in range(15)] and s.verify() == []
    # A root whose totals disagree with its manifests names both counts.
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["pcdata"]["num_points"] += 1
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreFormatError, match=rf"^{path}: the manifests list 90 clouds and {c.num_points} points, "
                                               rf"the root metadata 90 and {c.num_points + 1}$"):
        open_store(path)


def _edge_clouds():
    """Clouds around the edges of 4-row chunks: starting on an edge, ending one row past one,
    empty on an edge (cloud 3) and inside a chunk (cloud 6); every point's value is its row."""
    counts = np.array([4, 5, 3, 0, 4, 1, 0, 7, 4, 2, 6])  # first rows 0, 4, 9, 12, 12, 16, 17, 17, 24, 28, 30
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    points = np.repeat(np.arange(off[-1], dtype=np.float32), 3).reshape(-1, 3)
    return Clouds(points, off, {"pt": np.arange(len(counts), dtype=np.float32), "n": counts.astype(np.int32)},
                  ("x", "y", "z"))


def test_any_selection_of_clouds_at_chunk_edges_reads_right(tmp_path):
    import itertools

    c = _edge_clouds()
    write_store(tmp_path / "s", c, template(), chunks=ChunkSpec(points_rows=4, clouds=4))
    s = open_store(tmp_path / "s")
    n = len(c)
    for sel in itertools.chain(itertools.permutations(range(n), 2), itertools.combinations(range(n), 3)):
        assert s.take(list(sel)).equals(c.take(list(sel))), sel


def test_empty_clouds_read_no_points_chunk(tmp_path):
    c = _edge_clouds()
    write_store(tmp_path / "s", c, template(), chunks=ChunkSpec(points_rows=4, clouds=4))
    path = shard(tmp_path / "s", 0)
    data = bytearray(path.read_bytes())
    for offset, nbytes in shard_entries(path):  # every points chunk damaged
        data[offset : offset + nbytes] = b"g" * nbytes
    path.write_bytes(bytes(data))
    s = open_store(tmp_path / "s")
    for sel in ([3], [6], [3, 6], [6, 3, 6]):
        assert s.take(sel).equals(c.take(sel)), sel
    assert s[6]["points"].shape == (0, 3) and s[6]["points"].dtype == np.float32
    with pytest.raises(StoreFormatError, match="damaged Blosc chunk"):
        s.take([5])


def test_fragments_without_points_read_and_verify(tmp_path):
    counts = np.array([2, 0, 0, 3, 1])
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    c = Clouds(np.arange(off[-1] * 3, dtype=np.float32).reshape(-1, 3), off,
               {"pt": np.arange(5, dtype=np.float32), "n": counts.astype(np.int32)}, ("x", "y", "z"))
    write_store(tmp_path / "s", c, template(), clouds_per_fragment=1)  # fragments 1 and 2 hold no points
    s = open_store(tmp_path / "s")
    assert s.verify() == [] and s.read().equals(c) and s.take([2, 1]).equals(c.take([2, 1]))
    np.testing.assert_array_equal(s.read_points(1, 4), c.points[1:4])  # across both
    assert [len(f) for f in s.iter_fragments()] == [1] * 5


def test_a_store_of_no_fragments_reads_as_empty(tmp_path):
    from pcdata.store import open_store as open_path

    t = template().__class__(**{**template().__dict__, "expected_fragments": 2})
    prepare_store(tmp_path / "s", t)  # nothing committed yet
    message = (rf"^{tmp_path / 's'}: incomplete store, 0 of 2 fragments committed \(an ingest was interrupted\); "
               r"re-run the same ingest command to finish it$")
    with pytest.raises(StoreIncompleteError, match=message):
        open_path(tmp_path / "s")  # the default refuses it
    s = open_path(tmp_path / "s", allow_incomplete=True)
    none = make_clouds(0)
    assert (s.num_fragments, len(s), s.max_points) == (0, 0, 0)
    assert s.read().equals(none) and s.take([]).equals(none) and s.read(fields=["n"]).fields["n"].dtype == np.int32
    assert s.field("pt").dtype == np.float32 and s.field("pt").shape == (0,)
    np.testing.assert_array_equal(s.offsets, [0])
    assert s.map_points() is None and s.verify() == [] and list(s.iter_fragments()) == []


def test_no_clouds_read_in_the_store_dtypes(store_path, clouds):
    s = open_store(store_path)
    assert s.take([]).equals(clouds.slice(0, 0)) and s[5:5].equals(clouds.slice(0, 0))
    assert s.take([]).offsets.dtype == np.int64
    assert s.read(3, 3, fields=["n"]).equals(Clouds(clouds.points[:0], clouds.offsets[:1], {"n": clouds.fields["n"][:0]},
                                                    clouds.point_features))


def test_slices_and_field_selection_read_what_they_name(store_path, clouds):
    s = open_store(store_path)
    assert s[:5].equals(clouds.slice(0, 5)) and s[:0].equals(clouds.slice(0, 0))
    assert s[::2].equals(clouds.take(np.arange(0, 2000, 2))) and s[1:9:1].equals(clouds.slice(1, 9))
    got = s.read(690, 710, fields=["n"])
    assert list(got.fields) == ["n"] and np.array_equal(got.fields["n"], clouds.fields["n"][690:710])
    # Not sorted, though every index after the first is larger than it.
    assert s.take([0, 1500, 700, 701]).equals(clouds.take([0, 1500, 700, 701]))
    with pytest.raises(SplitNotFoundError, match=rf"^{store_path}: no split 'dev' \(has train, val, test\)$"):
        s.split("dev")


def test_indices_of_any_integer_type_read_the_same(store_path, clouds):
    s = open_store(store_path)
    idx = [1999, 5, 700, 699, 5]
    for dtype in (np.int32, np.uint32, np.uint64):
        typed = np.array(idx, dtype)
        starts, counts = s.point_ranges(typed)
        np.testing.assert_array_equal(starts, clouds.offsets[idx])
        np.testing.assert_array_equal(counts, clouds.counts[idx])
        np.testing.assert_array_equal(s.fields_of(typed, ["n"])[:, 0], clouds.fields["n"][idx])
        assert s.take(typed).equals(clouds.take(idx))
        np.testing.assert_array_equal(s.in_split(typed, "val"), s.in_split(np.array(idx), "val"))
    small = np.array([-1, 5, 127, -128], np.int8)  # counted from the end: past what int8 holds
    assert s.take(small).equals(clouds.take([1999, 5, 127, 1872]))


def test_views_of_a_split(store_path, clouds):
    import awkward as ak

    s = open_store(store_path)
    val = clouds.take(s.split_indices("val"))
    padded = s.to_numpy(pad=7, split="val")
    expected = val.padded(7)
    assert padded.points.shape == (len(val), 7, 3) and padded.truncated == expected.truncated > 0
    np.testing.assert_array_equal(padded.points, expected.points)
    np.testing.assert_array_equal(padded.mask, expected.mask)
    assert s.to_arrow(split="val").equals(val.to_arrow())
    assert ak.to_list(s.to_awkward(split="val")) == ak.to_list(val.to_awkward())


def test_the_default_arrow_batch_is_65536_clouds(tmp_path):
    n = 65537
    off = np.arange(n + 1, dtype=np.int64) // 2
    c = Clouds(np.ones((off[-1], 3), np.float32), off, {"pt": np.zeros(n, np.float32), "n": np.zeros(n, np.int32)},
               ("x", "y", "z"))
    write_store(tmp_path / "s", c, template())
    assert [b.num_rows for b in open_store(tmp_path / "s").iter_arrow_batches()] == [65536, 1]


def test_recently_used_fragments_stay_cached_and_the_least_recent_is_evicted(tmp_path, clouds, monkeypatch):
    import pcdata.store.reader as reader

    path = tmp_path / "many"
    write_store(path, clouds, template(), clouds_per_fragment=50, chunks=SMALL_CHUNKS)  # 40 fragments
    monkeypatch.setattr(reader, "_CACHE_BYTES", 1)
    s = open_store(path)
    assert s._cache_limit == 16
    for k in [*range(16), 0, 16]:  # fragment 0 used again before 16 comes in: 1 is the least recent
        s.point_ranges([50 * k])
    for f in fragment_dirs(path):
        shutil.rmtree(f / "offsets")
    for k in (0, *range(2, 17)):  # held in memory: the removed offsets are not read again
        assert s.point_ranges([50 * k + 1])[0][0] == clouds.offsets[50 * k + 1]
    with pytest.raises(StoreFormatError, match="fragment f000000001: missing chunk file"):
        s.point_ranges([50])


def test_verify_reports_every_damaged_fragment(store_path):
    import zarr

    gone = shard(store_path, 0)
    gone.unlink()
    arr = zarr.open_array(str(shard(store_path, 2).parent), mode="r+")
    arr[3] = arr[3] + 1
    assert open_store(store_path).verify() == [
        f"fragment f000000000: unreadable ({store_path}: fragment f000000000: missing chunk file ({gone}))",
        "fragment f000000002: checksum mismatch"]


def test_a_damaged_format_1_fragment_is_an_error_naming_it(store_v1):
    import zarr

    chunk = store_v1 / "fragments" / "f000001" / "points" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:16] + b"g" * (chunk.stat().st_size - 16))
    with pytest.raises(StoreFormatError, match=rf"^{chunk}: damaged Blosc chunk"):
        open_store(store_v1).read()
    assert open_store(store_v1).verify()[0].startswith(f"fragment f000001: unreadable ({chunk}: damaged Blosc chunk")
    # Offsets that end short of the fragment's points: the counts no longer match the manifest.
    offsets = zarr.open_array(str(store_v1 / "fragments" / "f000002"), path="offsets", mode="r+")
    offsets[-1] = offsets[-1] - 1
    assert open_store(store_v1).verify()[1:] == ["fragment f000002: counts differ from the metadata"]
    shutil.rmtree(store_v1 / "fragments" / "f000000" / "cloud" / "pt")
    with pytest.raises(StoreFormatError, match=rf"^{store_v1}: fragment f000000 is missing or damaged \(cloud/pt: "):
        open_store(store_v1).field("pt")
