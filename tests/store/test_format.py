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
