"""Fuzz the shared catalog's readers: entry files (as documents and as bytes) and catalog.yaml."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import strategies as st

from pcdata.catalog.entry import CatalogConfig, CatalogEntry, EntryFragment
from pcdata.catalog.shared import SharedCatalog
from pcdata.store.format import Feature, FeatureStats, Provenance, SourceFile
from tests.fuzz._fuzz import dump, mutated, mutated_bytes, project_error_or, run_for, write_text

pytestmark = pytest.mark.fuzz

ENTRY = CatalogEntry(
    name="top30", version=1, path="/stores/top30.zarr", kind="jets", coords="relative-hadronic", num_clouds=10,
    num_points=120, point_features=(Feature("etarel"), Feature("ptrel")), cloud_features=(Feature("pt", "GeV"),),
    stats={"pt": FeatureStats(10, 1.0, 0.5, 0.1, 2.0)},
    provenance=Provenance((SourceFile("/data/t.hdf5", 100, "ab" * 32),), "pcdata ingest", "pcdata 0.1.0", "u", "h", "now"),
    fragments=(EntryFragment("f000000000", 10, 120, "c" * 16),), fingerprint="fp", registered_by="u",
).to_dict()
CONFIG = CatalogConfig(("/stores",)).to_dict()


def _check_entry(doc) -> None:
    entry = project_error_or(lambda: CatalogEntry.from_dict(doc, source="e.json"), "e.json")
    if entry is not None:  # what it accepts it writes back the same way
        assert CatalogEntry.from_dict(entry.to_dict(), source="e.json") == entry


def test_entry_documents_raise_only_catalog_errors():
    run_for(_check_entry, mutated(ENTRY, max_mutations=4))


def _check_files(data) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "cat"
        (root / "entries" / "top30").mkdir(parents=True)
        entry, config = root / "entries" / "top30" / "1.json", root / "catalog.yaml"
        write_text(entry, dump(ENTRY))
        write_text(config, yaml.safe_dump(CONFIG))
        which = data.draw(st.sampled_from(["entry-bytes", "config", "config-bytes"]), label="what")
        if which == "entry-bytes":
            entry.write_bytes(data.draw(mutated_bytes(entry.read_bytes()), label="bytes"))
        elif which == "config":
            write_text(config, yaml.safe_dump(data.draw(mutated(CONFIG), label="config"), allow_unicode=True))
        else:
            config.write_bytes(data.draw(mutated_bytes(config.read_bytes()), label="bytes"))
        cat = SharedCatalog(root)
        project_error_or(lambda: cat.config, str(config))
        project_error_or(lambda: cat.get("top30@1"), str(entry))


def test_catalog_files_raise_only_catalog_errors():
    run_for(_check_files, st.data())
