"""``pcdata catalog list`` as a real subprocess."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_catalog_list_json_holds_the_public_datasets():
    proc = run_cli("pcdata", "catalog", "list", "--json", check=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert list(doc) == ["public"]
    by_name = {d["name"]: d for d in doc["public"]}
    assert len(by_name) == 14
    assert by_name["jetnet:t"]["num_clouds"] == 177945
    assert by_name["jetnet:t"]["files"][0]["url"] == "https://zenodo.org/records/6975118/files/t.hdf5?download=1"
    assert by_name["calochallenge:ds2"]["total_size"] == 1356475617 + 1366708391
    assert by_name["calochallenge:ds3"]["geometry"] == "ds3"
    assert by_name["jetnet:z150"]["total_size"] is None


def test_catalog_list_table():
    proc = run_cli("pcdata", "catalog", "list", check=True, timeout=60)
    assert "Public datasets" in proc.stdout
    for text in ("jetnet:g150", "calochallenge:ds1-pions", "8099322", "2.7 GB", "not published"):
        assert text in proc.stdout


def test_catalog_list_bad_catalog_file(tmp_path):
    bad = tmp_path / "cat.yaml"
    bad.write_text("format: pcdata-public-catalog\nversion: 7\ndatasets: []\n")
    proc = run_cli("pcdata", "catalog", "list", "--catalog", str(bad), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: catalog {bad}: version: this pcdata reads version 1, found 7"
