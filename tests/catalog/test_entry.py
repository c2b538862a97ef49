"""pcdata.catalog.entry: entry and config documents, names and references."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pcdata.catalog.entry import CatalogConfig, CatalogEntry, check_name, parse_ref
from pcdata.errors import CatalogFormatError, InvalidReferenceError
from pcdata.store.format import FragmentInfo, Provenance, SourceFile
from tests.store.conftest import template


def _entry(**changes) -> CatalogEntry:
    meta = replace(template(), num_fragments=1, num_clouds=3, num_points=10)
    fragments = (FragmentInfo("f000000", 3, 10, "sha256:" + "ab" * 32),)
    prov = Provenance(sources=(SourceFile("/data/t.hdf5", 123, "cd" * 32),), command="pcdata ingest jetnet t.hdf5",
                      tool="pcdata 0.1.0", user="alice", host="node1", created="2025-01-01T00:00:00+00:00")
    meta = replace(meta, provenance=prov)
    e = CatalogEntry.from_store("top30", 2, "/cluster/stores/t", meta, fragments, user="bob", host="node2",
                                when="2025-01-02T00:00:00+00:00")
    return replace(e, **changes) if changes else e


def test_entry_round_trips_and_keeps_what_a_user_needs():
    e = _entry()
    d = e.to_dict()
    assert CatalogEntry.from_dict(d) == e
    assert e.ref == "top30@2"
    assert d["provenance"]["sources"][0]["sha256"] == "cd" * 32
    assert d["registered"] == {"user": "bob", "host": "node2", "time": "2025-01-02T00:00:00+00:00"}
    assert d["fragments"] == [{"id": "f000000", "num_clouds": 3, "num_points": 10, "checksum": "sha256:" + "ab" * 32}]
    assert [f["name"] for f in d["point_features"]] == ["x", "y", "z"]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("path"), "top level: missing field 'path'"),
    (lambda d: d.update(format_version=9), "format_version: this pcdata reads version 1, found 9"),
    (lambda d: d.update(version=0), "version: expected an integer >= 1, found 0"),
    (lambda d: d.update(colour="red"), "top level.colour: unknown field"),
    (lambda d: d["fragments"][0].pop("checksum"), "fragments[0]: missing field 'checksum'"),
    (lambda d: d.update(point_features=[{"unit": "GeV"}]), "point_features[0]: missing field 'name'"),
    (lambda d: d.update(path="relative/store"), "path must be absolute"),
    (lambda d: d.update(name="../etc"), "catalog name '../etc'"),
])
def test_entry_validation_names_file_and_field(mutate, message):
    d = _entry().to_dict()
    mutate(d)
    with pytest.raises(CatalogFormatError) as err:
        CatalogEntry.from_dict(d, source="/cat/entries/top30/2.json")
    assert str(err.value).startswith("catalog /cat/entries/top30/2.json: ")
    assert message in str(err.value)


@pytest.mark.parametrize("ref, expected", [("top30", ("top30", None)), ("top30@12", ("top30", 12)),
                                           ("jets.v2_a-b@1", ("jets.v2_a-b", 1))])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "a/b", "a@", "a@x", "a@0", ".hidden", "-x", "a b", "a@1@2"])
def test_bad_refs_are_refused(ref):
    with pytest.raises(InvalidReferenceError):
        parse_ref(ref)


def test_bad_name_is_a_value_error():
    with pytest.raises(ValueError, match="catalog name 'a@1'"):
        check_name("a@1")


def test_config_round_trip_and_allows(tmp_path):
    root = tmp_path / "stores"
    (root / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    c = CatalogConfig((str(root),))
    assert CatalogConfig.from_dict(c.to_dict()) == c
    assert c.allows(root / "a") and c.allows(root)
    assert not c.allows(tmp_path / "elsewhere")
    assert not c.allows(root / "link")  # a link inside a root that points outside is outside
    assert not c.allows(str(root) + "2")  # a sibling sharing the prefix is outside


@pytest.mark.parametrize("doc, message", [
    ({"format": "pcdata-shared-catalog", "version": 1, "allowed_roots": []}, "allowed_roots: expected a non-empty list"),
    ({"format": "pcdata-shared-catalog", "version": 1, "allowed_roots": ["rel"]}, "allowed_roots[0]: expected an absolute path"),
    ({"format": "other", "version": 1, "allowed_roots": ["/a"]}, "format: expected 'pcdata-shared-catalog'"),
])
def test_config_validation(doc, message):
    with pytest.raises(CatalogFormatError, match="catalog /c/catalog.yaml: ") as err:
        CatalogConfig.from_dict(doc, source="/c/catalog.yaml")
    assert message in str(err.value)
