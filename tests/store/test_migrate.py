"""pcdata.store.migrate: format 1 stores rewritten as format 2, clouds and checksums unchanged."""

from __future__ import annotations

import pytest

from pcdata.errors import StoreFormatError
from pcdata.store import open_store
from pcdata.store.migrate import migrate_store
from tests.store.conftest import make_clouds


def test_a_format_1_store_migrates_with_the_same_clouds_checksums_and_statistics(tmp_path, store_v1):
    old = open_store(store_v1)
    meta = migrate_store(store_v1, tmp_path / "new")
    new = open_store(tmp_path / "new")
    assert (meta.version, new.meta.version) == (2, 2)
    assert new.read().equals(make_clouds(300, seed=3)) and new.read().equals(old.read())
    assert [f.checksum for f in new.fragments] == [f.checksum for f in old.fragments]
    assert [f.source for f in new.fragments] == [f.source for f in old.fragments]
    assert new.stats == old.stats and new.meta.splits == old.meta.splits and new.meta.provenance == old.meta.provenance
    assert (new.meta.layout.points_rows, new.meta.layout.clouds, new.meta.layout.cname) == (500, 100, "lz4")
    assert new.verify() == []
    assert open_store(store_v1).meta.version == 1  # the old store is left as it was


def test_a_damaged_format_1_fragment_stops_the_migration(tmp_path, store_v1):
    import zarr

    arr = zarr.open_array(str(store_v1 / "fragments" / "f000001"), path="points", mode="r+")
    arr[0, 0] = arr[0, 0] + 1
    with pytest.raises(StoreFormatError, match="fragment f000001 reads back with checksum"):
        migrate_store(store_v1, tmp_path / "new")
