import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pcdata.errors import ExportError
from pcdata.exports.arrow import export_arrow
from pcdata.loaders import PointCloudLoader
from tests.loaders.conftest import jet_store, jets  # noqa: F401  (session fixtures)


def _read(path, fmt):
    if fmt == "parquet":
        return pq.read_table(path)
    with pa.ipc.open_file(path) as reader:
        return reader.read_all()


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_export_round_trips_and_agrees_with_the_loader(jet_store, tmp_path, fmt):
    out = export_arrow(jet_store, tmp_path / f"jets.{fmt}", format=fmt, batch_size=700)
    table = _read(out, fmt)
    assert table.num_rows == jet_store.num_clouds
    assert table.column_names == ["eta_rel", "phi_rel", "pt_rel", "pt", "eta", "n"]
    meta = json.loads(table.schema.metadata[b"pcdata"])
    assert meta["kind"] == "jets" and [f["name"] for f in meta["point_features"]] == ["eta_rel", "phi_rel", "pt_rel"]
    # The same clouds as the loader gives, in store order.
    batch = next(iter(PointCloudLoader(jet_store, split=None, batch_size=jet_store.num_clouds, shuffle=False)))
    mask = batch["mask"].numpy()
    for j, name in enumerate(("eta_rel", "phi_rel", "pt_rel")):
        col = table.column(name).combine_chunks()
        np.testing.assert_array_equal(col.offsets.to_numpy()[1:] - col.offsets.to_numpy()[:-1], batch["counts"].numpy())
        np.testing.assert_array_equal(col.values.to_numpy(), batch["points"].numpy()[..., j][mask])
    np.testing.assert_array_equal(table.column("pt").to_numpy(), batch["cloud"].numpy()[:, 0])
    assert table.column("n").type == pa.int32()


def test_a_split_and_the_other_views_agree(jet_store, tmp_path):
    import awkward as ak

    out = export_arrow(jet_store, tmp_path / "val.parquet", split="val")
    table = pq.read_table(out)
    reference = jet_store.to_arrow(split="val")
    assert table.select(reference.column_names).equals(reference)
    arr = jet_store.to_awkward(split="val")
    assert ak.to_list(ak.num(arr.points, axis=1)) == [len(x) for x in table.column("pt_rel").to_pylist()]
    streamed = pa.Table.from_batches(list(jet_store.iter_arrow_batches(100, split="val")))
    assert streamed.equals(reference)


def test_polars_reads_both_files(jet_store, tmp_path):
    pl = pytest.importorskip("polars")
    pq_path = export_arrow(jet_store, tmp_path / "a.parquet", split="test")
    ipc_path = export_arrow(jet_store, tmp_path / "a.arrow", format="arrow", split="test")
    for frame in (pl.read_parquet(pq_path), pl.read_ipc(ipc_path)):
        assert frame.height == len(jet_store.split_indices("test"))
        np.testing.assert_array_equal(frame["n"].to_numpy(), jet_store.field("n")[jet_store.split_indices("test")])
        assert frame["pt_rel"].list.len().to_list() == jet_store.counts[jet_store.split_indices("test")].tolist()


def test_failure_leaves_no_file_and_bad_options_are_refused(jet_store, tmp_path, monkeypatch):
    out = tmp_path / "x.parquet"
    with pytest.raises(ExportError, match="unknown export format 'csv'"):
        export_arrow(jet_store, out, format="csv")
    with pytest.raises(KeyError, match="no split"):
        export_arrow(jet_store, out, split="dev")

    take, calls = type(jet_store).take, []

    def fails_on_the_third_batch(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:  # two batches are written by then
            raise OSError("disk full")
        return take(self, *a, **k)

    monkeypatch.setattr(type(jet_store), "take", fails_on_the_third_batch)
    with pytest.raises(OSError, match="disk full"):
        export_arrow(jet_store, out, batch_size=100)
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []  # no partial file, no temporary left
