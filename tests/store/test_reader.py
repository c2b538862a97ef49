import json

import numpy as np
import pytest

from pcdata import open_store
from pcdata.errors import NotAStoreError, StoreFormatError, StoreIncompleteError, StoreNotFoundError
from pcdata.store.writer import prepare_store
from pcdata.store import write_store
from tests.store.conftest import SMALL_CHUNKS, make_clouds, shard, shard_entries, template


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
