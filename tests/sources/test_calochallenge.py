"""Tests of pcdata.sources.calochallenge: layout checks, block reads, the atomic writer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pcdata.errors import SourceError
from pcdata.geometry.voxels import clouds_to_voxels, voxels_to_clouds
from pcdata.sources.calochallenge import (
    CaloChallengeShowers,
    CaloChallengeWriter,
    default_block_rows,
    inspect_calochallenge_file,
    read_calochallenge_block,
    write_calochallenge_hdf5,
)

N_VOXELS = 368  # ds1-photons: small files


def _arrays(n: int = 200, n_voxels: int = N_VOXELS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    showers = np.where(rng.random((n, n_voxels)) < 0.3, rng.exponential(50.0, (n, n_voxels)), 0).astype(np.float32)
    inc = np.exp2(rng.integers(8, 23, (n, 1))).astype(np.float32)
    return inc, showers


def _raw(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return str(path)


@pytest.fixture()
def good_file(tmp_path):
    inc, showers = _arrays()
    path = tmp_path / "photons.hdf5"
    write_calochallenge_hdf5(path, inc, showers)
    return path, inc, showers


def test_inspect_describes_a_valid_file(good_file):
    path, inc, _ = good_file
    info = inspect_calochallenge_file(path, "ds1-photons")
    assert (info.n_showers, info.n_voxels, info.geometry, info.path) == (200, 368, "ds1-photons", str(path))
    assert info.size == path.stat().st_size


def _bad_inputs(d):
    inc, showers = _arrays(20)
    cases = {}
    cases["missing file"] = (str(d / "nope.hdf5"), "no such file")
    (d / "empty.hdf5").write_bytes(b"")
    cases["empty"] = (str(d / "empty.hdf5"), "empty file (0 bytes)")
    (d / "text.hdf5").write_text("incident_energies,showers\n1,2\n")
    cases["not hdf5"] = (str(d / "text.hdf5"), "not a readable HDF5 file (file signature not found)")
    full = _raw(d / "full.hdf5", incident_energies=inc, showers=showers)
    data = open(full, "rb").read()
    (d / "cut.hdf5").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (str(d / "cut.hdf5"), "not a readable HDF5 file (truncated file")
    cases["missing key"] = (_raw(d / "nokey.hdf5", showers=showers), "missing dataset 'incident_energies' (found: showers)")
    cases["voxel count"] = (
        _raw(d / "ds2.hdf5", incident_energies=inc, showers=np.zeros((20, 6480), np.float32)),
        "showers have 6480 voxels but geometry ds1-photons has 368 (matches ds2)",
    )
    cases["(N,) energies"] = (
        _raw(d / "flat.hdf5", incident_energies=inc[:, 0], showers=showers),
        "incident_energies has shape (20,) instead of (20, 1)",
    )
    cases["lengths"] = (
        _raw(d / "len.hdf5", incident_energies=inc[:15], showers=showers),
        "incident_energies has 15 rows but showers has 20",
    )
    cases["zero showers"] = (
        _raw(d / "zero.hdf5", incident_energies=inc[:0], showers=showers[:0]),
        "holds no showers",
    )
    cases["3-d showers"] = (
        _raw(d / "three.hdf5", incident_energies=inc, showers=showers.reshape(20, 8, 46)),
        "showers must have shape [N, n_voxels], found [20, 8, 46]",
    )
    return cases


def test_every_bad_layout_is_refused_with_one_line_naming_file_and_problem(tmp_path):
    for case, (path, message) in _bad_inputs(tmp_path).items():
        with pytest.raises(SourceError) as info:
            inspect_calochallenge_file(path, "ds1-photons")
        text = str(info.value)
        assert "\n" not in text, case
        assert text.startswith(f"{path}: ") and message in text, (case, text)


def test_block_read_returns_exactly_the_rows_asked_for(good_file, monkeypatch):
    path, inc, showers = good_file
    info = inspect_calochallenge_file(path, "ds1-photons")
    seen = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        seen.append((self.name, key))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    clouds = read_calochallenge_block(info, 37, 81)
    monkeypatch.undo()
    # only the two datasets were read, each with the row slice 37:81 and nothing else
    assert sorted(seen) == [("/incident_energies", slice(37, 81)), ("/showers", slice(37, 81))]
    assert len(clouds) == 44
    expected = voxels_to_clouds(showers[37:81], inc[37:81].astype(np.float64), "ds1-photons")  # written as float64
    assert clouds.equals(expected)


def test_blocks_reassemble_the_file_bit_for_bit(good_file):
    path, inc, showers = good_file
    source = CaloChallengeShowers.open([path], "ds1-photons")
    assert source.kind == "showers" and source.files[0].n_showers == 200
    step = 64
    parts = [source.read(0, s, min(200, s + step)) for s in range(0, 200, step)]
    inc2, showers2 = clouds_to_voxels(type(parts[0]).concat(parts), "ds1-photons")
    np.testing.assert_array_equal(showers2.view(np.uint32), showers.view(np.uint32))
    np.testing.assert_array_equal(inc2, inc)
    assert read_calochallenge_block(source.files[0], 190, 500).fields["num_points"].shape == (10,)  # clipped


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda inc, sh: sh.__setitem__((57, 3), -1.0), "showers have negative energies (first at row 57)"),
        (lambda inc, sh: sh.__setitem__((12, 0), np.nan), "showers have non-finite energies (first at row 12)"),
        (lambda inc, sh: sh.__setitem__((99, 7), np.inf), "non-finite energies (first at row 99)"),
        (lambda inc, sh: inc.__setitem__((44, 0), 0.0), "incident_energies must be finite and positive (row 44"),
    ],
)
def test_bad_values_name_the_first_bad_row(tmp_path, edit, message):
    inc, showers = _arrays(120)
    edit(inc, showers)
    path = tmp_path / "bad.hdf5"
    write_calochallenge_hdf5(path, inc, showers)
    info = inspect_calochallenge_file(path, "ds1-photons")  # layout is fine: values are read per block
    assert len(read_calochallenge_block(info, 100, 120)) == 20  # a clean block reads fine
    with pytest.raises(SourceError, match=rf"^{path}: ") as err:
        read_calochallenge_block(info, 10, 120)  # row numbers are the file's, not the block's
    assert message in str(err.value)


def test_writer_layout_matches_the_official_files(tmp_path):
    inc, showers = _arrays(300)
    path = tmp_path / "out.hdf5"
    write_calochallenge_hdf5(path, inc, showers)
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["incident_energies", "showers"]
        assert f["incident_energies"].shape == (300, 1) and f["showers"].shape == (300, 368)
        assert f["showers"].compression == "gzip" and f["incident_energies"].compression == "gzip"
        assert f["showers"].chunks[1] == 368  # chunks of whole rows
        # float64 energies: exact for float32 input, and the official classifiers need one float64 dataset
        assert f["showers"].dtype == np.float32 and f["incident_energies"].dtype == np.float64
        np.testing.assert_array_equal(f["showers"][:], showers)
        np.testing.assert_array_equal(f["incident_energies"][:].astype(np.float32), inc.reshape(-1, 1))
    # float64 incident energies stay float64 (no rounding on the way out)
    write_calochallenge_hdf5(tmp_path / "f64.hdf5", inc.astype(np.float64) + 0.1, showers)
    with h5py.File(tmp_path / "f64.hdf5", "r") as f:
        assert f["incident_energies"].dtype == np.float64


def test_writer_is_atomic(tmp_path):
    inc, showers = _arrays(100)
    path = tmp_path / "a.hdf5"
    with pytest.raises(RuntimeError):
        with CaloChallengeWriter(path, n_showers=100, n_voxels=368) as w:
            w.write(0, inc[:50], showers[:50])
            raise RuntimeError("interrupted")
    with pytest.raises(ValueError, match="wrote 50 of 100 showers"):
        with CaloChallengeWriter(path, n_showers=100, n_voxels=368) as w:
            w.write(0, inc[:50], showers[:50])
    with pytest.raises(ValueError, match=r"rows 90:140 outside 0:100"):
        with CaloChallengeWriter(path, n_showers=100, n_voxels=368) as w:
            w.write(90, inc[:50], showers[:50])
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary is left behind
    with CaloChallengeWriter(path, n_showers=100, n_voxels=368) as w:  # blocks in any order
        w.write(50, inc[50:, 0], showers[50:])
        w.write(0, inc[:50], showers[:50])
    assert inspect_calochallenge_file(path, "ds1-photons").n_showers == 100


def test_block_size_hint():
    assert default_block_rows(40500) == 414 and default_block_rows(6480) == 2589
    assert default_block_rows(10**9) == 1


def test_float64_energies_are_checked_as_the_float32_the_store_keeps(tmp_path):
    """Found by the fuzz target: an energy below float32's range became a hit of energy 0, one
    above it an inf with a numpy warning."""
    import h5py

    from pcdata.errors import SourceError
    from pcdata.sources.calochallenge import inspect_calochallenge_file, read_calochallenge_block

    showers = np.zeros((2, 368))
    showers[0, 3], showers[1, 5] = 5e-324, 2.0
    with h5py.File(tmp_path / "ds1.hdf5", "w") as f:
        f["incident_energies"], f["showers"] = np.full((2, 1), 1e4), showers
    clouds = read_calochallenge_block(inspect_calochallenge_file(tmp_path / "ds1.hdf5", "ds1-photons"), 0, 2)
    assert clouds.counts.tolist() == [0, 1] and clouds.points[:, 3].tolist() == [2.0]
    showers[1, 5] = 1e300
    with h5py.File(tmp_path / "ds1.hdf5", "w") as f:
        f["incident_energies"], f["showers"] = np.full((2, 1), 1e4), showers
    with pytest.raises(SourceError, match=r"ds1\.hdf5: showers have non-finite energies \(first at row 1\)"):
        read_calochallenge_block(inspect_calochallenge_file(tmp_path / "ds1.hdf5", "ds1-photons"), 0, 2)
