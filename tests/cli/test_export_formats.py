"""``pcdata export --format parquet|arrow`` as a real subprocess, read back by pyarrow and polars."""

import numpy as np
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from pcdata import open_store
from pcdata.ingest import IngestOptions, ingest_jetnet
from tests.conftest import run_cli

pytestmark = pytest.mark.distributed


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_export_columnar_formats_from_the_cli(tmp_path, jetnet_files, scheduler, fmt):
    store = ingest_jetnet(jetnet_files[1:], tmp_path / "s", cluster=scheduler, options=IngestOptions(progress=False))
    out = tmp_path / f"jets.{fmt}"
    run_cli("pcdata", "export", str(store.path), "--format", fmt, "--out", str(out), "--split", "test", check=True)
    table = pq.read_table(out) if fmt == "parquet" else pyarrow.ipc.open_file(out).read_all()
    test = open_store(store.path).split("test")
    assert table.num_rows == len(test)
    np.testing.assert_array_equal(table.column("ptrel").combine_chunks().flatten().to_numpy(), test.points[:, 2])
    polars = pytest.importorskip("polars")
    frame = polars.read_parquet(out) if fmt == "parquet" else polars.read_ipc(out)
    assert frame["mass"].to_numpy().tolist() == test.fields["mass"].tolist()
