"""pcdata.catalog.public: the shipped catalog and the validation of catalog files."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from pcdata.catalog import (
    PublicCatalog,
    PublicDataset,
    PublicFile,
    default_catalog_path,
    get_dataset,
    load_public_catalog,
)
from pcdata.errors import CatalogFormatError, CatalogNotFoundError, DatasetNotFoundError

REPO = Path(__file__).resolve().parents[2]

# Load-bearing facts (FACTS.md, the jetnet library, the Zenodo records): the catalog must hold them.
JETNET_JETS = {"g": 177252, "q": 170679, "t": 177945, "w": 177172, "z": 176952}
RECORDS = {
    "calochallenge:ds1-photons": 8099322,
    "calochallenge:ds1-pions": 8099322,
    "calochallenge:ds2": 6366271,
    "calochallenge:ds3": 6366324,
}
SHOWER_FILES = {
    "calochallenge:ds1-photons": ["dataset_1_photons_1.hdf5", "dataset_1_photons_2.hdf5"],
    "calochallenge:ds1-pions": ["dataset_1_pions_1.hdf5", "dataset_1_pions_2.hdf5"],
    "calochallenge:ds2": ["dataset_2_1.hdf5", "dataset_2_2.hdf5"],
    "calochallenge:ds3": [f"dataset_3_{i}.hdf5" for i in range(1, 5)],
}


@pytest.fixture(scope="module")
def shipped() -> PublicCatalog:
    return load_public_catalog()


def test_shipped_catalog_is_found_in_the_repository():
    assert default_catalog_path() == REPO / "catalogs" / "public.yaml"


def test_shipped_catalog_holds_every_dataset(shipped):
    jets = [f"jetnet:{c}" for c in "gqtwz"] + [f"jetnet:{c}150" for c in "gqtwz"]
    assert shipped.names == tuple(jets + list(SHOWER_FILES))
    assert len(shipped) == 14


@pytest.mark.parametrize("cls", "gqtwz")
def test_jetnet_entries(shipped, cls):
    for suffix, particles, record in (("", 30, 6975118), ("150", 150, 6975117)):
        ds = shipped.get(f"jetnet:{cls}{suffix}")
        assert (ds.kind, ds.layout, ds.num_particles, ds.geometry) == ("jets", "jetnet-hdf5", particles, None)
        (f,) = ds.files
        assert (f.name, f.record) == (f"{cls}{suffix}.hdf5", record)
        assert ds.ingest == f"pcdata ingest jetnet {f.name} --out jetnet-{cls}{suffix}.zarr"
    assert shipped.get(f"jetnet:{cls}").num_clouds == JETNET_JETS[cls]


@pytest.mark.parametrize("name", list(SHOWER_FILES))
def test_calochallenge_entries(shipped, name):
    ds = shipped.get(name)
    geometry = name.split(":")[1]
    assert (ds.kind, ds.layout, ds.geometry, ds.num_particles) == ("showers", "calochallenge-hdf5", geometry, None)
    assert [f.name for f in ds.files] == SHOWER_FILES[name]
    assert ds.records == (RECORDS[name],)
    # Every CaloChallenge MD5 was found in published download code; none may go missing.
    assert all(re.fullmatch(r"[0-9a-f]{32}", f.md5 or "") for f in ds.files)
    assert ds.ingest == (f"pcdata ingest calochallenge --geometry {geometry} "
                         f"{' '.join(SHOWER_FILES[name])} --out calochallenge-{geometry}.zarr")


def test_shower_counts_and_sizes_where_published(shipped):
    assert shipped.get("calochallenge:ds2").num_clouds == 200_000  # 2 files x 100k
    assert shipped.get("calochallenge:ds3").num_clouds == 200_000  # 4 files x 50k
    assert shipped.get("calochallenge:ds2").total_size == 1356475617 + 1366708391
    assert shipped.get("calochallenge:ds3").total_size is None  # not published here


def test_every_url_follows_the_zenodo_pattern(shipped):
    for ds in shipped:
        for f in ds.files:
            assert f.url == f"https://zenodo.org/records/{f.record}/files/{f.name}?download=1"


def test_round_trip(shipped):
    again = PublicCatalog.from_dict(shipped.to_dict(), source="x")
    assert again.datasets == shipped.datasets
    ds = shipped.get("calochallenge:ds2")
    assert PublicDataset.from_dict(ds.to_dict()) == ds
    assert PublicFile.from_dict(ds.files[0].to_dict()) == ds.files[0]
    # The JSON-able form carries only the fields of the kind.
    assert "num_particles" not in ds.to_dict() and "geometry" not in shipped.get("jetnet:t").to_dict()


def test_get_dataset_suggests_close_names(shipped):
    assert get_dataset("jetnet:t150").num_particles == 150
    assert get_dataset("jetnet:t", shipped) is shipped.get("jetnet:t")
    with pytest.raises(DatasetNotFoundError, match="did you mean calochallenge:ds2") as info:
        get_dataset("calochallenge:ds-2")
    assert isinstance(info.value, LookupError)
    with pytest.raises(DatasetNotFoundError, match="known: jetnet:g, "):
        shipped.get("zzzzzzzzzzzzzzzz")


# --- malformed catalogs: each error names the file and the field -----------------------------

def _doc() -> dict:
    return {
        "format": "pcdata-public-catalog",
        "version": 1,
        "datasets": [
            {
                "name": "jetnet:t",
                "description": "tops",
                "kind": "jets",
                "layout": "jetnet-hdf5",
                "num_particles": 30,
                "files": [{"name": "t.hdf5", "record": 6975118, "url": "https://zenodo.org/x", "size": 10,
                           "md5": "0" * 32}],
                "ingest": "pcdata ingest jetnet t.hdf5 --out t.zarr",
            },
            {
                "name": "calochallenge:ds2",
                "description": "ds2",
                "kind": "showers",
                "layout": "calochallenge-hdf5",
                "geometry": "ds2",
                "files": [{"name": "dataset_2_1.hdf5", "record": 6366271, "url": "https://zenodo.org/y"}],
                "ingest": "pcdata ingest calochallenge --geometry ds2 dataset_2_1.hdf5 --out d.zarr",
            },
        ],
    }


def _set(path: str, value):
    def edit(doc):
        *keys, last = path.split("/")
        node = doc
        for k in keys:
            node = node[int(k)] if k.isdigit() else node[k]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
        return doc

    return edit


_DELETE = object()

MALFORMED = [
    (_set("format", "other"), r"format: expected 'pcdata-public-catalog'"),
    (_set("version", 2), r"version: this pcdata reads version 1, found 2"),
    (_set("datasets", {"a": 1}), r"datasets: expected a list"),
    (_set("datasets/0/kind", "cats"), r"datasets\[0\]\.kind: expected one of jets, showers, found 'cats'"),
    (_set("datasets/0/description", _DELETE), r"datasets\[0\]: missing field 'description'"),
    (_set("datasets/0/md5s", "x"), r"datasets\[0\]\.md5s: unknown field"),
    (_set("datasets/0/name", "JetNet t"), r"datasets\[0\]\.name: expected a name like"),
    (_set("datasets/0/layout", "calochallenge-hdf5"), r"datasets\[0\]\.layout: jets come in jetnet-hdf5"),
    (_set("datasets/0/geometry", "ds2"), r"datasets\[0\]\.geometry: only showers have a geometry"),
    (_set("datasets/0/num_particles", _DELETE), r"datasets\[0\]: missing field|num_particles: expected an integer"),
    (_set("datasets/1/geometry", "ds9"), r"datasets\[1\]\.geometry: expected one of ds1-photons, ds1-pions, ds2, ds3"),
    (_set("datasets/1/num_particles", 30), r"datasets\[1\]\.num_particles: only jets have num_particles"),
    (_set("datasets/0/files", []), r"datasets\[0\]\.files: expected a non-empty list"),
    (_set("datasets/0/files/0/md5", "ABC"), r"datasets\[0\]\.files\[0\]\.md5: expected 32 lower-case hex digits"),
    (_set("datasets/0/files/0/size", -1), r"datasets\[0\]\.files\[0\]\.size: expected an integer >= 0 or null"),
    (_set("datasets/0/files/0/size", True), r"datasets\[0\]\.files\[0\]\.size: expected an integer"),
    (_set("datasets/0/files/0/record", "6975118"), r"datasets\[0\]\.files\[0\]\.record: expected an integer >= 1"),
    (_set("datasets/0/files/0/name", "../t.hdf5"), r"datasets\[0\]\.files\[0\]\.name: expected a bare file name"),
    (_set("datasets/0/files/0/url", "ftp://x"), r"datasets\[0\]\.files\[0\]\.url: expected an http\(s\) URL"),
    (_set("datasets/0/files/0/url", _DELETE), r"datasets\[0\]\.files\[0\]: missing field 'url'"),
    (_set("datasets/0/ingest", "rm -rf /"), r"datasets\[0\]\.ingest: expected a 'pcdata ingest \.\.\.' command"),
    (_set("datasets/1/name", "jetnet:t"), r"datasets\[1\]\.name: dataset 'jetnet:t' is listed twice"),
    (lambda d: (d["datasets"][0]["files"].append(dict(d["datasets"][0]["files"][0])), d)[1],
     r"datasets\[0\]\.files\[1\]\.name: file 't\.hdf5' is listed twice"),
]


@pytest.mark.parametrize(("edit", "message"), MALFORMED, ids=[re.sub(r"[^\w.\[\]]+", "-", m.split(":")[0]) for _, m in MALFORMED])
def test_malformed_catalog_names_file_and_field(tmp_path, edit, message):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_doc()))
    load_public_catalog(good)  # the unedited document is valid
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edit(copy.deepcopy(_doc()))))
    with pytest.raises(CatalogFormatError) as info:
        load_public_catalog(bad)
    text = str(info.value)
    assert text.startswith(f"catalog {bad}: ")
    assert re.search(message, text), text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n  - x: {\n")
    with pytest.raises(CatalogFormatError, match=rf"catalog {re.escape(str(bad))}: not valid YAML at line \d+") as info:
        load_public_catalog(bad)
    assert "\n" not in str(info.value)


def test_not_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(CatalogFormatError, match="top level: expected a mapping, found list"):
        load_public_catalog(bad)


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogNotFoundError, match=r"catalog .*nothere\.yaml does not exist") as info:
        load_public_catalog(tmp_path / "nothere.yaml")
    assert isinstance(info.value, FileNotFoundError)
