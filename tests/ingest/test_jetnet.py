import h5py
import numpy as np
import pytest

from pcdata import open_store
from pcdata.errors import SourceError
from pcdata.exports import export_jetnet
from pcdata.ingest import IngestOptions, ingest_jetnet
from tests.helpers import synthetic_jetnet_arrays
from pcdata.sources.jetnet import write_jetnet_hdf5

pytestmark = pytest.mark.distributed


def _read(path):
    with h5py.File(path) as f:
        return f["particle_features"][:], f["jet_features"][:]


def test_ingest_then_export_gives_the_input_back(tmp_path, jetnet_files, scheduler):
    store = ingest_jetnet(jetnet_files, tmp_path / "s", cluster=scheduler, options=IngestOptions(rows_per_fragment=700, progress=False))
    assert store.num_clouds == 4000 and len(store.fragments) == 5 + 2
    assert store.kind == "jets" and store.coords == "relative-hadronic"
    labels = store.field("label")
    assert (labels[:3000] == 2).all() and (labels[3000:] == 1).all()
    out = export_jetnet(store, tmp_path / "back.hdf5")
    pf, jf = _read(out)
    inputs = [_read(f) for f in jetnet_files]
    np.testing.assert_array_equal(pf, np.concatenate([p for p, _ in inputs]))
    np.testing.assert_array_equal(jf, np.concatenate([j for _, j in inputs]))
    # Only real particles are stored.
    assert store.num_points == int(sum(p[..., 3].sum() for p, _ in inputs))


def test_statistics_come_out_of_the_same_pass_and_are_right(tmp_path, jetnet_files, scheduler):
    store = ingest_jetnet(jetnet_files, tmp_path / "s", cluster=scheduler, options=IngestOptions(rows_per_fragment=512, progress=False))
    pf = np.concatenate([_read(f)[0] for f in jetnet_files])
    real = pf[..., 2][pf[..., 3] == 1].astype(np.float64)
    s = store.stats["ptrel"]
    assert s.count == real.size
    assert s.mean == pytest.approx(real.mean(), rel=1e-9) and s.std == pytest.approx(real.std(), rel=1e-7)
    assert (s.min, s.max) == (real.min(), real.max())
    src = store.meta.provenance.sources
    assert [p.path for p in src] == [str(f) for f in jetnet_files] and all(len(p.sha256) == 64 for p in src)


def test_one_and_two_workers_give_identical_stores(tmp_path, jetnet_files, scheduler):
    one = ingest_jetnet(jetnet_files, tmp_path / "one", cluster={"workers": 1}, options=IngestOptions(rows_per_fragment=600, progress=False))
    two = ingest_jetnet(jetnet_files, tmp_path / "two", cluster=scheduler, options=IngestOptions(rows_per_fragment=600, progress=False))
    assert [f.to_dict() for f in one.fragments] == [f.to_dict() for f in two.fragments]
    assert one.stats == two.stats
    assert one.read().equals(two.read())


def test_bad_values_in_a_late_block_leave_no_store(tmp_path, scheduler):
    pf, jf = synthetic_jetnet_arrays(2000, 30, seed=3)
    pf[1900, 0, 0] = np.nan
    write_jetnet_hdf5(tmp_path / "t.hdf5", pf, jf)
    with pytest.raises(SourceError, match=r"t.hdf5: particle_features has non-finite values \(first at jet 1900\)"):
        ingest_jetnet([tmp_path / "t.hdf5"], tmp_path / "s", cluster=scheduler, options=IngestOptions(rows_per_fragment=100, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.hdf5"]


def test_failed_overwrite_keeps_the_existing_store(tmp_path, jetnet_files, scheduler):
    good = ingest_jetnet(jetnet_files[:1], tmp_path / "s", cluster=scheduler, options=IngestOptions(progress=False))
    pf, jf = synthetic_jetnet_arrays(500, 30, seed=3)
    jf[400, 3] = 99  # disagrees with the mask
    write_jetnet_hdf5(tmp_path / "q.hdf5", pf, jf)
    with pytest.raises(SourceError, match="mask disagrees with num_particles at jet 400"):
        ingest_jetnet([tmp_path / "q.hdf5"], tmp_path / "s", cluster=scheduler, options=IngestOptions(overwrite=True, rows_per_fragment=100, progress=False))
    again = open_store(tmp_path / "s")
    assert again.fragments == good.fragments and again.verify() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
