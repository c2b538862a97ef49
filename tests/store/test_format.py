import json

import numpy as np
import pytest

from pcdata.errors import StoreFormatError
from dataclasses import replace

from pcdata.store.format import (ChunkSpec, Feature, FragmentInfo, ManifestPart, Manifests, Moments, SplitSpec,
                                 StoreMeta, fragment_id)


def _meta(**kw):
    return StoreMeta(kind="jets", coords="relative-hadronic", point_features=(Feature("a"), Feature("b", "rad")),
                     cloud_features=(Feature("pt", "GeV"),), **kw)


def test_meta_round_trips_through_json():
    m = _meta(generation="g0123456789ab", num_fragments=1, num_clouds=3, num_points=10, expected_fragments=1,
              layout=ChunkSpec(points_rows=7, clouds=5, cname="zstd", clevel=3, shuffle="bitshuffle"),
              manifests=Manifests(index=(ManifestPart("manifests/g0123456789ab/index-00000000.json", 1, 3, 10),)))
    back = StoreMeta.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert back.num_clouds == 3 and back.num_points == 10
    building = replace(m, status="incomplete", manifests=Manifests(log=4))
    assert StoreMeta.from_dict(json.loads(json.dumps(building.to_dict()))) == building


def test_fragment_info_round_trips_and_names_its_partition():
    info = FragmentInfo("f000000012", 3, 10, "sha256:x", {"file": 0}, {"a": Moments.of([1.0, 2.0])})
    assert FragmentInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert info.index == 12 and fragment_id(12) == "f000000012" and FragmentInfo("f000012", 1, 1, "").index == 12
    with pytest.raises(StoreFormatError, match="invalid fragment id 'x12'"):
        FragmentInfo("x12", 1, 1, "").index


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": 7}, "store format version 7 is not supported"),
        ({"version": 1}, "S: missing field 'fragments'"),  # a format 1 root lists its fragments
        ({"layout": {"points_rows": 0, "clouds": 1, "cname": "lz4", "clevel": 5, "shuffle": "shuffle"}}, "layout: chunk sizes"),
        ({"layout": {"points_rows": 8, "clouds": 1, "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "fanout": 10}}, "fan-out 10"),
        ({"manifests": {"index": [{"path": "m"}]}}, "manifests.index\\[0\\]: missing field 'fragments'"),
        ({"format": "other"}, "unknown store format 'other'"),
        ({"kind": "muons"}, "kind must be one of"),
        ({"splits": {"fractions": {"train": 0.5}, "seed": 1, "method": "splitmix64-rank-v1"}}, "sum to 1"),
        # found by the fuzz target (tests/fuzz/store): TypeError/ValueError before, or accepted
        ({"stats": {"pt": {"count": 3, "mean": "x"}}}, r"S.stats.pt: field 'mean' must be int/float, found str"),
        ({"stats": []}, r"S: field 'stats' must be dict, found list"),
        ({"attrs": 7}, r"S: field 'attrs' must be dict, found int"),
        ({"expected_fragments": "3"}, r"S: field 'expected_fragments' must be int, found str"),
        ({"num_clouds": -1}, r"S: field 'num_clouds' must be >= 0, found -1"),
        ({"splits": {"fractions": {"train": float("nan"), "test": 1.0}, "seed": 1, "method": "splitmix64-rank-v1"}},
         r"S.splits.fractions: 'train' must be a finite number"),
        ({"point_features": [{"name": "a", "dtype": "{'x': None}"}]}, r"S.point_features: feature 'a' has dtype"),
        ({"cloud_features": [{"name": "pt", "dtype": None, "unit": ["GeV"]}]}, r"S.cloud_features: field 'unit' must be str"),
    ],
)
def test_invalid_metadata_names_the_problem(change, message):
    d = _meta().to_dict() | change
    with pytest.raises(StoreFormatError, match=message):
        StoreMeta.from_dict(d, where="S")


def test_missing_field_is_named():
    d = _meta().to_dict()
    del d["coords"]
    with pytest.raises(StoreFormatError, match="S: missing field 'coords'"):
        StoreMeta.from_dict(d, where="S")


def test_moments_merge_equals_whole_array_statistics():
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, size=10_000)
    parts = np.array_split(x, [0, 17, 4000, 4001, 9000])
    merged = Moments()
    for p in parts:
        merged = merged.merge(Moments.of(p))
    s = merged.to_stats()
    assert s.count == x.size
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.std == pytest.approx(x.std(), rel=1e-10)
    assert (s.min, s.max) == (x.min(), x.max())
    assert Moments().to_stats().mean is None


def test_split_spec_rejects_duplicates():
    with pytest.raises(StoreFormatError):
        SplitSpec((("a", 0.5), ("a", 0.5)))


# -- every field, every default, every message (each kills a class of format bugs) ----------------
from pcdata.store.format import FeatureStats, Provenance, SourceFile, fragment_index, parse_root  # noqa: E402


def _full_meta():
    return StoreMeta(
        kind="showers", coords="cylindrical-cells",
        point_features=(Feature("r", "mm", "float64", "radial cell"), Feature("e", "MeV")),
        cloud_features=(Feature("energy", "MeV", "float32", "incident"), Feature("n", "", "int32", "hits")),
        status="complete", generation="g00000000000a",
        layout=ChunkSpec(points_rows=9, clouds=4, cname="zstd", clevel=0, shuffle="noshuffle"),
        num_fragments=2, num_clouds=7, num_points=40, expected_fragments=3,
        manifests=Manifests(index=(ManifestPart("m/0.json", 1, 3, 10), ManifestPart("m/1.json", 1, 4, 30))),
        stats={"r": FeatureStats(40, 1.5, 0.25, -2.0, 9.0), "e": FeatureStats(0, None, None, None, None)},
        splits=SplitSpec((("a", 0.25), ("b", 0.75)), seed=11, method="splitmix64-rank-v1"),
        provenance=Provenance((SourceFile("/in/x.h5", 123, "ab" * 32), SourceFile("/in/y.h5", 0)), "pcdata ingest",
                              "pcdata 9.9", "me", "box", "2026-12-02T00:00:00"),
        fingerprint="fp", attrs={"dataset": 2, "nested": {"k": [1, 2]}},
    )


def test_every_field_round_trips_and_is_written_under_its_documented_key():
    m = _full_meta()
    d = json.loads(json.dumps(m.to_dict()))
    assert StoreMeta.from_dict(d) == m
    assert d["layout"] == {"points_rows": 9, "clouds": 4, "cname": "zstd", "clevel": 0, "shuffle": "noshuffle", "fanout": 1000}
    assert d["point_features"][0] == {"name": "r", "unit": "mm", "dtype": "float64", "description": "radial cell"}
    assert d["stats"] == {"r": {"count": 40, "mean": 1.5, "std": 0.25, "min": -2.0, "max": 9.0},
                          "e": {"count": 0, "mean": None, "std": None, "min": None, "max": None}}
    assert d["splits"] == {"fractions": {"a": 0.25, "b": 0.75}, "seed": 11, "method": "splitmix64-rank-v1"}
    assert d["provenance"] == {"sources": [{"path": "/in/x.h5", "size": 123, "sha256": "ab" * 32},
                                           {"path": "/in/y.h5", "size": 0, "sha256": None}],
                               "command": "pcdata ingest", "tool": "pcdata 9.9", "user": "me", "host": "box",
                               "created": "2026-12-02T00:00:00"}
    assert d["manifests"] == {"index": [{"path": "m/0.json", "fragments": 1, "clouds": 3, "points": 10},
                                        {"path": "m/1.json", "fragments": 1, "clouds": 4, "points": 30}]}
    assert (d["format"], d["version"], d["kind"], d["coords"], d["status"], d["generation"], d["fingerprint"]) == (
        "pcdata.pointcloud", 2, "showers", "cylindrical-cells", "complete", "g00000000000a", "fp")
    assert (d["num_fragments"], d["num_clouds"], d["num_points"], d["expected_fragments"], d["attrs"]) == (
        2, 7, 40, 3, {"dataset": 2, "nested": {"k": [1, 2]}})
    assert Manifests(log=5).to_dict() == {"log": 5} and Manifests.from_dict({"log": 5}) == Manifests(log=5)


def test_optional_fields_take_their_documented_defaults():
    d = _full_meta().to_dict()
    for key in ("expected_fragments", "stats", "fingerprint", "attrs"):
        del d[key]
    d["point_features"] = [{"name": "r"}]
    d["provenance"] = {"sources": [{"path": "p", "size": 1}]}
    m = StoreMeta.from_dict(d)
    assert (m.expected_fragments, m.stats, m.fingerprint, m.attrs) == (0, {}, "", {})
    assert m.point_features == (Feature("r", "", "float32", ""),)
    assert m.provenance == Provenance((SourceFile("p", 1, None),), "", "", "", "", "")
    del d["layout"]["fanout"]
    assert StoreMeta.from_dict(d).layout == _full_meta().layout
    info = FragmentInfo.from_dict({"id": "f000000001", "num_clouds": 2, "num_points": 5, "checksum": "c"})
    assert (info.source, info.moments, info.max_points) == ({}, {}, -1)
    full = FragmentInfo("f000000001", 2, 5, "c", {"file": 1, "start": 0, "stop": 2}, {"r": Moments.of([1.0, 4.0])}, 3)
    assert full.to_dict()["max_points"] == 3 and FragmentInfo.from_dict(json.loads(json.dumps(full.to_dict()))) == full


def test_statistics_and_moments_store_non_finite_values_as_null():
    assert Moments().to_dict() == {"count": 0, "mean": 0.0, "m2": 0.0, "min": None, "max": None}
    assert Moments.from_dict({"count": 0, "mean": "anything"}) == Moments()
    m = Moments.of([1.0, 2.0, 6.0])
    assert m.to_dict() == {"count": 3, "mean": 3.0, "m2": 14.0, "min": 1.0, "max": 6.0}
    assert Moments.from_dict(m.to_dict()) == m
    assert Moments.of([]) == Moments() and m.merge(Moments()) is m and Moments().merge(m) is m
    assert m.to_stats() == FeatureStats(3, 3.0, (14.0 / 3) ** 0.5, 1.0, 6.0)
    assert Moments().to_stats() == FeatureStats(0, None, None, None, None)
    assert FeatureStats(1, float("nan"), float("inf"), 0.0, 2).to_dict() == {"count": 1, "mean": None, "std": None,
                                                                             "min": 0.0, "max": 2.0}
    assert FeatureStats.from_dict({"count": 2, "mean": 1, "std": None}) == FeatureStats(2, 1.0, None, None, None)
    with pytest.raises(StoreFormatError, match="moments: missing field 'm2'"):
        Moments.from_dict({"count": 2, "mean": 1.0, "min": 0.0, "max": 1.0})


@pytest.mark.parametrize("d, message", [
    ([1], "S: expected an object, found list"),
    ({}, "S: missing field 'name'"),
    ({"name": 3}, "S: field 'name' must be str, found int"),
])
def test_a_feature_refuses_what_is_not_one(d, message):
    with pytest.raises(StoreFormatError, match=f"^{message}$"):
        Feature.from_dict(d, "S")


def test_type_checks_name_the_field_the_types_and_refuse_booleans_for_numbers():
    with pytest.raises(StoreFormatError, match=r"^S: field 'num_clouds' must be int, found bool$"):
        FragmentInfo.from_dict({"id": "f000000001", "num_clouds": True, "num_points": 5, "checksum": "c"}, "S")
    with pytest.raises(StoreFormatError, match=r"^M: field 'mean' must be int/float, found str$"):
        Moments.from_dict({"count": 1, "mean": "1", "m2": 0.0, "min": 0.0, "max": 1.0}, "M")
    assert Moments.from_dict({"count": 1, "mean": 1, "m2": 0, "min": 1, "max": 1}) == Moments(1, 1.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("path, value, message", [
    (("provenance", "sources"), [{"path": "p"}], "S.provenance.sources\\[0\\]: missing field 'size'"),
    (("stats",), {"pt": {"mean": 1.0}}, "S.stats.pt: missing field 'count'"),
    (("point_features",), [{"unit": "GeV"}], "S.point_features: missing field 'name'"),
    (("cloud_features",), [{"name": 1}], "S.cloud_features: field 'name' must be str"),
    (("splits", "method"), "x", "S.splits: unknown split method 'x'"),
    (("splits", "seed"), "1", "S.splits: field 'seed' must be int"),
    (("manifests",), {"index": [{"path": "m", "fragments": 1, "clouds": 1}]}, "S.manifests.index\\[0\\]: missing field 'points'"),
    (("manifests",), {}, "S.manifests: missing field 'log'"),
    (("layout", "cname"), "gzip", "S.layout: compression 'gzip' is not one of lz4, zstd"),
    (("generation",), 5, "S: field 'generation' must be str, found int"),
    (("status",), "done", "S: status must be one of"),
])
def test_a_nested_error_names_where_it_is(path, value, message):
    d = _full_meta().to_dict()
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(StoreFormatError, match=f"^{message}"):
        StoreMeta.from_dict(d, where="S")


@pytest.mark.parametrize("kw, message", [
    ({"points_rows": 0}, "chunk sizes must be >= 1"),
    ({"clouds": 0}, "chunk sizes must be >= 1"),
    ({"cname": "gzip"}, "compression 'gzip' is not one of lz4, zstd, lz4hc, blosclz, zlib, none"),
    ({"shuffle": "bytes"}, "shuffle 'bytes' is not one of noshuffle, shuffle, bitshuffle"),
    ({"clevel": 10}, "compression level must be 0-9, got 10"),
    ({"clevel": -1}, "compression level must be 0-9, got -1"),
])
def test_chunk_spec_bounds(kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        ChunkSpec(**kw)
    assert ChunkSpec(points_rows=1, clouds=1, clevel=9) and ChunkSpec(clevel=0, shuffle="bitshuffle", cname="none")
    with pytest.raises(StoreFormatError, match=r"^L: fan-out 10 is not supported \(this pcdata writes 1000\)$"):
        ChunkSpec.from_dict(ChunkSpec().to_dict() | {"fanout": 10}, "L")


def test_split_spec_checks_its_fractions_and_method():
    with pytest.raises(StoreFormatError, match=r"^splits: fractions must be >= 0 and sum to 1, found \{'a': -0.5, 'b': 1.5\}$"):
        SplitSpec((("a", -0.5), ("b", 1.5)))
    with pytest.raises(StoreFormatError, match="sum to 1"):
        SplitSpec((("a", 0.5), ("b", 0.500002)))
    assert SplitSpec((("a", 0.5), ("b", 0.5000005))).names == ("a", "b")
    with pytest.raises(StoreFormatError, match=r"^splits: names must be unique and non-empty, found \[\]$"):
        SplitSpec(())
    with pytest.raises(StoreFormatError, match=r"^splits: unknown method 'm' \(known: splitmix64-threshold-v1, splitmix64-rank-v1\)$"):
        SplitSpec(method="m")
    assert SplitSpec.from_dict({"fractions": {"x": 1}, "seed": 3, "method": "splitmix64-rank-v1"}) == SplitSpec(
        (("x", 1.0),), 3, "splitmix64-rank-v1")


def test_store_meta_checks_kind_status_and_unique_fields():
    with pytest.raises(StoreFormatError, match=r"^kind must be one of \('jets', 'showers', 'events'\), found 'muons'$"):
        replace(_full_meta(), kind="muons")
    with pytest.raises(StoreFormatError, match=r"^status must be one of \('incomplete', 'complete'\), found 'x'$"):
        replace(_full_meta(), status="x")
    with pytest.raises(StoreFormatError, match=r"^cloud feature names must be unique, found \['e', 'e'\]$"):
        replace(_full_meta(), cloud_features=(Feature("e"), Feature("e")))
    assert _full_meta().point_feature_names == ("r", "e") and _full_meta().cloud_feature_names == ("energy", "n")


def test_a_format_1_root_is_parsed_with_counts_from_its_fragments_and_refused_as_format_2():
    d = _full_meta().to_dict() | {"version": 1}
    for key in ("generation", "layout", "num_fragments", "num_clouds", "num_points", "manifests"):
        del d[key]
    infos = [FragmentInfo("f000001", 3, 10, "a"), FragmentInfo("f000002", 4, 30, "b")]
    d["fragments"] = [f.to_dict() for f in infos]
    meta, fragments = parse_root(json.loads(json.dumps(d)))
    assert fragments == tuple(infos)
    assert (meta.version, meta.num_fragments, meta.num_clouds, meta.num_points) == (1, 2, 7, 40)
    assert meta.stats == _full_meta().stats and meta.splits == _full_meta().splits
    with pytest.raises(StoreFormatError, match="^S: format version 1 where 2 was expected$"):
        StoreMeta.from_dict(d, where="S")
    d["fragments"] = [{"id": "f000001"}]
    with pytest.raises(StoreFormatError, match=r"^S.fragments\[0\]: missing field 'num_clouds'$"):
        parse_root(d, where="S")
    assert parse_root(_full_meta().to_dict()) == (_full_meta(), None)
    with pytest.raises(StoreFormatError, match=r"^S: store format version 3 is not supported \(this pcdata reads versions 1, 2\)$"):
        parse_root(_full_meta().to_dict() | {"version": 3}, where="S")
    with pytest.raises(StoreFormatError, match=r"^S: unknown store format 'x' \(expected 'pcdata.pointcloud'\)$"):
        parse_root(_full_meta().to_dict() | {"format": "x"}, where="S")


def test_fragment_names_are_nine_digits_and_parse_back():
    assert fragment_id(0) == "f000000000" and fragment_id(123456789) == "f123456789"
    assert fragment_index("f000000042") == 42 and fragment_index("f7") == 7
    for bad in ("g000000001", "f12a", "f", "12"):
        with pytest.raises(StoreFormatError, match=f"^invalid fragment id '{bad}'$"):
            fragment_index(bad)


def _without(d, path):
    d = json.loads(json.dumps(d))
    target = d
    for key in path[:-1]:
        target = target[key][0] if isinstance(target[key], list) else target[key]
    del target[path[-1]]
    return d


_ROOT_FIELDS = [("format",), ("version",), ("kind",), ("coords",), ("status",), ("point_features",),
                ("cloud_features",), ("splits",), ("provenance",), ("generation",), ("layout",), ("num_fragments",),
                ("num_clouds",), ("num_points",), ("manifests",)]
_NESTED_FIELDS = [(("layout", k), "S.layout") for k in ("points_rows", "clouds", "cname", "clevel", "shuffle")] + [
    (("splits", k), "S.splits") for k in ("fractions", "seed", "method")] + [
    (("provenance", "sources"), "S.provenance"), (("provenance", "sources", "path"), r"S.provenance.sources\[0\]"),
    (("provenance", "sources", "size"), r"S.provenance.sources\[0\]"), (("point_features", "name"), "S.point_features"),
    (("cloud_features", "name"), "S.cloud_features"), (("stats", "r", "count"), "S.stats.r")] + [
    (("manifests", "index", k), r"S.manifests.index\[0\]") for k in ("path", "fragments", "clouds", "points")]


@pytest.mark.parametrize("path", _ROOT_FIELDS)
def test_every_required_root_field_is_named_when_missing(path):
    with pytest.raises(StoreFormatError, match=rf"^S: missing field '{path[-1]}'$"):
        parse_root(_without(_full_meta().to_dict(), path), where="S")


@pytest.mark.parametrize("path, where", _NESTED_FIELDS)
def test_every_required_nested_field_is_named_with_its_place_when_missing(path, where):
    with pytest.raises(StoreFormatError, match=rf"^{where}: missing field '{path[-1]}'$"):
        parse_root(_without(_full_meta().to_dict(), path), where="S")


@pytest.mark.parametrize("key", ["id", "num_clouds", "num_points", "checksum"])
def test_every_required_fragment_field_is_named(key):
    d = FragmentInfo("f000000001", 2, 5, "c", {}, {"r": Moments.of([1.0, 2.0])}).to_dict()
    del d[key]
    with pytest.raises(StoreFormatError, match=rf"^F: missing field '{key}'$"):
        FragmentInfo.from_dict(d, "F")


@pytest.mark.parametrize("key", ["count", "mean", "m2", "min", "max"])
def test_every_moment_is_named_with_its_fragment_and_feature(key):
    d = FragmentInfo("f000000001", 2, 5, "c", {}, {"r": Moments.of([1.0, 2.0])}).to_dict()
    del d["moments"]["r"][key]
    with pytest.raises(StoreFormatError, match=rf"^F.moments.r: missing field '{key}'$"):
        FragmentInfo.from_dict(d, "F")


def test_moments_of_any_shape_and_zero_fractions():
    m = Moments.of(np.array([[1, 2], [3, 4]]))
    assert (m.count, m.mean, m.m2, m.min, m.max) == (4, 2.5, 5.0, 1.0, 4.0)
    assert SplitSpec((("none", 0.0), ("all", 1.0))).names == ("none", "all")  # a fraction of 0 is allowed


@pytest.mark.parametrize("parse, where", [
    (Feature.from_dict, "feature"), (Moments.from_dict, "moments"), (FeatureStats.from_dict, "stats"),
    (SourceFile.from_dict, "source"), (Provenance.from_dict, "provenance"), (SplitSpec.from_dict, "splits"),
    (FragmentInfo.from_dict, "fragment"), (ChunkSpec.from_dict, "layout"), (ManifestPart.from_dict, "manifest"),
    (Manifests.from_dict, "manifests"), (StoreMeta.from_dict, "store"), (parse_root, "store")])
def test_each_part_names_itself_by_default(parse, where):
    with pytest.raises(StoreFormatError, match=f"^{where}: missing field "):
        parse({})
    with pytest.raises(StoreFormatError, match=r"^S.manifests: field 'index' must be list, found str$"):
        parse_root(_full_meta().to_dict() | {"manifests": {"index": "x"}}, where="S")


def test_roots_and_manifests_nested_too_deep_are_format_errors(tmp_path):
    """Found by the fuzz target: json raised RecursionError."""
    from pcdata.store.metadata import read_root

    (tmp_path / "zarr.json").write_text("[" * 100_000)
    with pytest.raises(StoreFormatError, match="unreadable zarr.json"):
        read_root(tmp_path)


def test_a_manifest_id_that_is_not_a_fragment_name_names_the_manifest(store_path):
    """Found by the fuzz target: the error named neither the store nor the manifest."""
    from pcdata.store import open_store

    manifest = sorted(store_path.glob("manifests/*/index-*.json"))[0]
    doc = json.loads(manifest.read_text())
    doc["ids"][0] = None
    manifest.write_text(json.dumps(doc))
    with pytest.raises(StoreFormatError, match=rf"{store_path}: damaged manifest .*index-00000000\.json \(invalid fragment id 'None'\)"):
        open_store(store_path).read()
