"""Fuzz the store's root metadata and manifest parsers: a real store with its root ``zarr.json``
or an index manifest mutated (as documents and as bytes), then opened and read whole."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from pcdata.store import open_store, write_store
from pcdata.store.format import StoreMeta, parse_root
from tests.fuzz._fuzz import dump, mutated, mutated_bytes, project_error_or, run_for, write_text
from tests.store.conftest import SMALL_CHUNKS, make_clouds, template

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz-store") / "s.zarr"
    write_store(path, make_clouds(300, seed=1), template(), clouds_per_fragment=100, chunks=SMALL_CHUNKS)
    return path


def _open_and_read(path: Path) -> None:
    s = project_error_or(lambda: open_store(path), str(path))
    if s is None:
        return
    clouds = project_error_or(lambda: s.read(), str(path))
    if clouds is None:
        return
    # What a successful read promises: the counts the metadata states, offsets that rise.
    assert len(clouds) == len(s) == s.meta.num_clouds
    assert len(clouds.points) == s.meta.num_points
    assert clouds.offsets[0] == 0 and (np.diff(clouds.offsets) >= 0).all()
    project_error_or(lambda: s.split(s.meta.splits.names[0]), str(path))


def _target(store: Path):
    root_doc = json.loads((store / "zarr.json").read_text())
    manifest = sorted(store.glob("manifests/*/index-*.json"))[0]
    manifest_doc = json.loads(manifest.read_text())

    def check(data) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s.zarr"
            shutil.copytree(store, path)
            which = data.draw(st.sampled_from(["root", "root", "manifest", "root-bytes", "manifest-bytes"]), label="what")
            if which == "root":
                doc = dict(root_doc, attributes=dict(root_doc["attributes"],
                                                     pcdata=data.draw(mutated(root_doc["attributes"]["pcdata"]), label="root")))
                write_text(path / "zarr.json", dump(doc))
            elif which == "manifest":
                write_text(path / manifest.relative_to(store), dump(data.draw(mutated(manifest_doc), label="manifest")))
            else:
                target = path / ("zarr.json" if which == "root-bytes" else manifest.relative_to(store))
                target.write_bytes(data.draw(mutated_bytes(target.read_bytes()), label="bytes"))
            _open_and_read(path)

    return check


def test_store_metadata_and_manifests_raise_only_project_errors(store):
    run_for(_target(store), st.data())


def test_root_metadata_parser_raises_only_store_format_errors(store):
    doc = json.loads((store / "zarr.json").read_text())["attributes"]["pcdata"]

    def check(d) -> None:
        meta = project_error_or(lambda: parse_root(d, where="s.zarr"), "s.zarr")
        if meta is not None:
            assert isinstance(meta[0], StoreMeta)

    run_for(check, mutated(doc, max_mutations=5))
