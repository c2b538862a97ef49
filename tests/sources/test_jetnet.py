import h5py
import numpy as np
import pytest

from pcdata.errors import SourceError
from pcdata.sources.jetnet import (
    JetNetSource,
    clouds_to_jetnet,
    inspect_jetnet_file,
    label_from_filename,
    read_jetnet_block,
    write_jetnet_hdf5,
)
from tests.helpers import synthetic_jetnet_arrays


@pytest.mark.parametrize("name, label", [("t.hdf5", 2), ("g150.hdf5", 0), ("z30.h5", 4), ("top.hdf5", None), ("x.hdf5", None)])
def test_label_from_filename(name, label):
    assert label_from_filename(f"/data/{name}") == label


def test_block_read_keeps_only_real_particles(tmp_path):
    pf, jf = synthetic_jetnet_arrays(200, 30, seed=4)
    write_jetnet_hdf5(tmp_path / "w.hdf5", pf, jf)
    src = JetNetSource.open([tmp_path / "w.hdf5"])
    c = src.read(0, 50, 120)
    assert len(c) == 70
    np.testing.assert_array_equal(c.counts, pf[50:120, :, 3].sum(1))
    np.testing.assert_array_equal(c.points, pf[50:120, :, :3][pf[50:120, :, 3] == 1])
    assert (c.fields["label"] == 3).all()
    np.testing.assert_array_equal(c.fields["num_particles"], jf[50:120, 3])
    pf2, jf2 = clouds_to_jetnet(c, 30)
    np.testing.assert_array_equal(pf2, pf[50:120])
    np.testing.assert_array_equal(jf2, jf[50:120])


def test_jetnet_arrays_sort_unsorted_particles_by_descending_ptrel_and_truncate_the_softest():
    from pcdata import Clouds

    rng = np.random.default_rng(8)
    counts = np.array([5, 0, 12, 1])
    off = np.concatenate([[0], np.cumsum(counts)])
    pts = rng.normal(size=(off[-1], 3)).astype(np.float32)
    pts[:, 2] = rng.permutation(np.arange(1, off[-1] + 1)).astype(np.float32) / 100  # distinct, unsorted ptrel
    clouds = Clouds(pts, off, {"pt": np.arange(4.0)}, ("etarel", "phirel", "ptrel"))
    pf, jf = clouds_to_jetnet(clouds, 8)
    for i in range(4):
        mine = pts[off[i]:off[i + 1]]
        want = mine[np.argsort(-mine[:, 2], kind="stable")][:8]  # the hardest 8, hardest first
        k = len(want)
        np.testing.assert_array_equal(pf[i, :k, :3], want)
        assert (pf[i, :k, 3] == 1).all() and (pf[i, k:] == 0).all()
    assert jf[:, 3].tolist() == counts.tolist()  # multiplicity before truncation


def _write(path, pf, jf):
    with h5py.File(path, "w") as f:
        if pf is not None:
            f["particle_features"] = pf
        if jf is not None:
            f["jet_features"] = jf
    return str(path)


@pytest.fixture
def arrays():
    return synthetic_jetnet_arrays(40, 30, seed=9)


def test_layout_errors_name_the_file(tmp_path, arrays):
    pf, jf = arrays
    cases = {
        "missing": (_write(tmp_path / "t1.hdf5", pf, None), "missing dataset 'jet_features'"),
        "shape": (_write(tmp_path / "t2.hdf5", pf[..., :3], jf), r"particle_features must have shape \[N, P, 4\]"),
        "lengths": (_write(tmp_path / "t3.hdf5", pf, jf[:10]), "particle_features has 40 jets but jet_features has 10"),
        "zero": (_write(tmp_path / "t4.hdf5", pf[:0], jf[:0]), "holds no jets"),
    }
    for path, message in cases.values():
        with pytest.raises(SourceError, match=message) as err:
            inspect_jetnet_file(path)
        assert str(err.value).startswith(path)
    empty = tmp_path / "t5.hdf5"
    empty.touch()
    with pytest.raises(SourceError, match="empty file"):
        inspect_jetnet_file(empty)
    (tmp_path / "t6.hdf5").write_text("not hdf5 at all")
    with pytest.raises(SourceError, match="not a readable HDF5 file"):
        inspect_jetnet_file(tmp_path / "t6.hdf5")
    with pytest.raises(SourceError, match="cannot tell the jet class"):
        inspect_jetnet_file(_write(tmp_path / "jets.hdf5", pf, jf))


def _corrupt(pf, jf, case):
    """Break jet j (the first one with padding) in the way ``case`` names; return arrays and j."""
    pf, jf = pf.copy(), jf.copy()
    counts = pf[:, :, 3].sum(1).astype(int)
    j = int(np.flatnonzero((counts > 1) & (counts < 30))[0])
    n = counts[j]
    if case == "nan":
        pf[j, 0, 1] = np.nan
    elif case == "mask-value":
        pf[j, 0, 3] = 0.5
    elif case == "mask-prefix":
        pf[j, n, :] = pf[j, 0, :]
        pf[j, 0, :] = 0
    elif case == "padding":
        pf[j, n:, 2] = 0.1
    elif case == "num":
        jf[j, 3] = n - 1
    elif case == "inf-jet":
        jf[j, 0] = np.inf
    return pf, jf, j


@pytest.mark.parametrize(
    "case, message",
    [
        ("nan", "particle_features has non-finite values .first at jet {j}"),
        ("inf-jet", "jet_features has non-finite values .first at jet {j}"),
        ("mask-value", "mask values must be 0 or 1 .first violation at jet {j}"),
        ("mask-prefix", "real particles must come before the padding .mask not a prefix at jet {j}"),
        ("padding", r"padding \(mask 0\) is not zero .first at jet {j}"),
        ("num", "mask disagrees with num_particles at jet {j}"),
    ],
)
def test_value_errors_name_file_and_jet(tmp_path, arrays, case, message):
    pf, jf, j = _corrupt(*arrays, case)
    path = _write(tmp_path / "t.hdf5", pf, jf)
    f = inspect_jetnet_file(path)
    with pytest.raises(SourceError, match=message.format(j=j)) as err:
        read_jetnet_block(f, 0, 40)
    assert str(err.value).startswith(path)
    read_jetnet_block(f, j + 1, 40)  # the other jets are fine


def test_truncated_file_is_reported(tmp_path):
    pf, jf = synthetic_jetnet_arrays(3000, 30, seed=1)
    path = tmp_path / "t.hdf5"
    write_jetnet_hdf5(path, pf, jf)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="t.hdf5: (not a readable HDF5 file|cannot read jets)"):
        f = inspect_jetnet_file(path)
        read_jetnet_block(f, 0, 3000)


# -- found by the fuzz target (tests/fuzz/sources/test_jetnet.py) ----------------------------------
@pytest.mark.parametrize("num", [2.0**24 + 1, 2.0**31, 1e30])
def test_num_particles_an_int32_store_field_cannot_hold_exactly_is_refused(tmp_path, num):
    import h5py

    from pcdata.errors import SourceError
    from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block
    from tests.helpers import synthetic_jetnet_arrays

    pf, jf = synthetic_jetnet_arrays(6, 5, seed=1)
    jf = jf.astype(np.float64)
    full = int(np.flatnonzero(pf[..., 3].sum(1) == 5)[0])
    jf[full, 3] = num  # a truncated jet: any num >= P passes the mask check
    with h5py.File(tmp_path / "t.hdf5", "w") as f:
        f["particle_features"], f["jet_features"] = pf, jf
    info = inspect_jetnet_file(tmp_path / "t.hdf5", label=2)
    with pytest.raises(SourceError, match=rf"t\.hdf5: num_particles must be an integer from 0 to 2\^24 \(first violation at jet {full}\)"):
        read_jetnet_block(info, 0, 6)


def test_a_damaged_group_table_is_a_source_error(tmp_path):
    from pcdata.errors import SourceError
    from pcdata.sources.jetnet import inspect_jetnet_file
    from tests.helpers import make_jetnet_file

    path = make_jetnet_file(tmp_path / "t.hdf5", 10, 5)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"SNOD", b"SNOX", 1))  # h5py raised RuntimeError on `key in file`
    with pytest.raises(SourceError, match=r"t\.hdf5: cannot read the layout, the file is damaged \(.*symbol table"):
        inspect_jetnet_file(path, label=2)
