"""Tests of pcdata.ingest.calochallenge and ``pcdata ingest calochallenge``: exact round trip on
generated files, worker-count independence, bounded read blocks, bad input, the GPU path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from pcdata import open_store
from pcdata.errors import ClusterError, SourceError
from pcdata.exports import export_calochallenge
from pcdata.generate.showers import generate_showers
from pcdata.ingest import IngestOptions, ingest_calochallenge
from pcdata.sources.calochallenge import CaloChallengeShowers, CaloChallengeShowersGPU
from pcdata.sources.calochallenge import inspect_calochallenge_file, read_calochallenge_block, write_calochallenge_hdf5
from tests.conftest import run_cli

pytestmark = pytest.mark.distributed


def _arrays(path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["incident_energies"][:], f["showers"][:]


@pytest.fixture(scope="module")
def shower_files(tmp_path_factory) -> dict[str, Path]:
    """Parametrised showers: ds1-photons (irregular layers) and ds2, small N."""
    d = tmp_path_factory.mktemp("calo")
    out = {}
    for geometry, n in (("ds1-photons", 96), ("ds2", 200)):
        out[geometry] = generate_showers(d / f"{geometry}.hdf5", geometry=geometry, num_showers=n, seed=7,
                                         progress=False).path
    # A second ds2 file (a slice of the first, float64 incident energies) for multi-file ingests.
    inc, showers = _arrays(out["ds2"])
    write_calochallenge_hdf5(d / "ds2-b.hdf5", inc[:70].astype(np.float64) * 1.5, showers[:70])
    out["ds2-b"] = d / "ds2-b.hdf5"
    return out


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("geometry", ["ds1-photons", "ds2"])
def test_ingest_then_export_gives_the_file_back_bit_for_bit(tmp_path, shower_files, scheduler, geometry):
    path = shower_files[geometry]
    store = ingest_calochallenge([path], tmp_path / "s", geometry=geometry, cluster=scheduler, options=IngestOptions(rows_per_fragment=40, progress=False))
    inc, showers = _arrays(path)
    assert store.kind == "showers" and store.coords == "cylindrical-cells"
    assert store.point_features == ("layer", "alpha_bin", "r_bin", "energy")
    assert store.cloud_features == ("incident_energy", "num_points", "energy_sum")
    units = {f.name: f.unit for f in (*store.meta.point_features, *store.meta.cloud_features)}
    assert units == {"layer": "", "alpha_bin": "", "r_bin": "", "energy": "MeV",
                     "incident_energy": "MeV", "num_points": "", "energy_sum": "MeV"}
    assert store.meta.attrs["geometry"] == geometry and store.meta.attrs["source_layout"] == "calochallenge-hdf5"
    assert len(store.fragments) == -(-len(showers) // 40)
    assert store.num_points == int((showers != 0).sum())
    np.testing.assert_array_equal(store.field("num_points"), (showers != 0).sum(axis=1))
    np.testing.assert_allclose(store.field("energy_sum"), showers.sum(axis=1, dtype=np.float64), rtol=1e-12)

    back = export_calochallenge(store, tmp_path / "back.hdf5")
    inc2, showers2 = _arrays(back)
    assert _same_bits(inc, inc2) and inc2.shape == (len(showers), 1)
    assert _same_bits(showers, showers2)


def test_several_files_keep_their_order_and_a_common_incident_dtype(tmp_path, shower_files, scheduler):
    files = [shower_files["ds2"], shower_files["ds2-b"]]
    store = ingest_calochallenge(files, tmp_path / "s", geometry="ds2", cluster=scheduler, options=IngestOptions(progress=False))
    # One file holds float64 energies: the field is float64 for all, so no value is rounded.
    assert store.field("incident_energy").dtype == np.float64
    inc = np.concatenate([_arrays(f)[0][:, 0].astype(np.float64) for f in files])
    np.testing.assert_array_equal(store.field("incident_energy"), inc)
    assert [p.path for p in store.meta.provenance.sources] == [str(f) for f in files]
    _, showers = _arrays(export_calochallenge(store, tmp_path / "back.hdf5"))
    assert _same_bits(showers, np.concatenate([_arrays(f)[1] for f in files]))


def test_one_and_two_workers_give_identical_stores(tmp_path, shower_files, scheduler):
    path = [shower_files["ds2"]]
    one = ingest_calochallenge(path, tmp_path / "one", geometry="ds2", cluster={"workers": 1}, options=IngestOptions(rows_per_fragment=30, progress=False))
    two = ingest_calochallenge(path, tmp_path / "two", geometry="ds2", cluster=scheduler, options=IngestOptions(rows_per_fragment=30, progress=False))
    assert [f.to_dict() for f in one.fragments] == [f.to_dict() for f in two.fragments]
    assert one.stats == two.stats
    assert one.read().equals(two.read())


def test_a_fragment_larger_than_a_read_block_is_read_in_blocks(shower_files, monkeypatch):
    info = inspect_calochallenge_file(shower_files["ds2"], "ds2")
    seen = []
    real = read_calochallenge_block

    def spy(file, start, stop, **kw):
        seen.append((start, stop))
        return real(file, start, stop, **kw)

    monkeypatch.setattr("pcdata.sources.calochallenge.read_calochallenge_block", spy)
    source = CaloChallengeShowers((info,), "ds2", block_rows=16, incident_dtype="float64")
    clouds = source.read(0, 5, 60)
    assert seen == [(5, 21), (21, 37), (37, 53), (53, 60)]
    assert clouds.equals(real(info, 5, 60))


def test_gpu_conversion_code_gives_the_cpu_bits(shower_files):
    """The GPU source's code path (read, check, torch conversion, back to numpy) run on CPU
    tensors: the same clouds as the numpy path, and the same errors."""
    pytest.importorskip("torch")
    for geometry in ("ds1-photons", "ds2"):
        info = inspect_calochallenge_file(shower_files[geometry], geometry)
        cpu = CaloChallengeShowers((info,), geometry, block_rows=25)
        gpu = CaloChallengeShowersGPU((info,), geometry, block_rows=25, device="cpu")
        assert gpu.read(0, 3, 90).equals(cpu.read(0, 3, 90))
        thr = replace(cpu, threshold=0.5), replace(gpu, threshold=0.5)
        assert thr[1].read(0, 0, 50).equals(thr[0].read(0, 0, 50))


@pytest.mark.parametrize("edit", ["negative", "nan"])
def test_gpu_conversion_code_names_the_same_bad_row(tmp_path, shower_files, edit):
    pytest.importorskip("torch")
    inc, showers = _arrays(shower_files["ds1-photons"])
    showers[61, 3] = -1.0 if edit == "negative" else np.nan
    write_calochallenge_hdf5(tmp_path / "bad.hdf5", inc, showers)
    info = inspect_calochallenge_file(tmp_path / "bad.hdf5", "ds1-photons")
    messages = []
    for source in (CaloChallengeShowers((info,), "ds1-photons", 25),
                   CaloChallengeShowersGPU((info,), "ds1-photons", 25, device="cpu")):
        with pytest.raises(SourceError) as err:
            source.read(0, 50, 96)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "first at row 61" in messages[0]


def test_catalog_command_form_with_threshold(tmp_path, shower_files, scheduler):
    # The shipped catalog writes: pcdata ingest calochallenge --geometry <ds> FILES... --out <store>
    out = tmp_path / "calochallenge-ds2.zarr"
    r = run_cli("pcdata", "ingest", "calochallenge", "--geometry", "ds2", str(shower_files["ds2"]),
                str(shower_files["ds2-b"]), "--out", str(out), "--scheduler", scheduler, "--threshold", "0.5",
                "--quiet", check=True)
    store = open_store(out)
    assert r.stdout.startswith(f"wrote {out}: 270 clouds") and store.num_clouds == 270
    assert store.meta.attrs["threshold_mev"] == 0.5
    energy = store.read().points[:, 3]
    assert energy.min() >= 0.5
    showers = np.concatenate([_arrays(shower_files[k])[1] for k in ("ds2", "ds2-b")])
    assert store.num_points == int((showers >= 0.5).sum())


def _bad_files(d: Path, good: Path) -> dict[str, tuple[str, str, str]]:
    """case -> (file, extra CLI args, message after '<file>: ')."""
    inc, showers = _arrays(good)
    n = len(showers)

    def raw(name, **datasets):
        with h5py.File(d / name, "w") as f:
            for k, v in datasets.items():
                f.create_dataset(k, data=v, compression="gzip")
        return str(d / name)

    neg, nan = showers.copy(), showers.copy()
    neg[83, 100] = -0.25
    nan[90, 7] = np.inf
    full = raw("full.hdf5", incident_energies=inc, showers=showers)
    data = Path(full).read_bytes()
    (d / "cut.hdf5").write_bytes(data[: len(data) // 3])
    (d / "empty.hdf5").write_bytes(b"")
    return {
        "voxel count": (raw("ds1.hdf5", incident_energies=inc, showers=showers[:, :368]), "",
                        "showers have 368 voxels but geometry ds2 has 6480 (matches ds1-photons)"),
        "negative": (raw("neg.hdf5", incident_energies=inc, showers=neg), "",
                     "showers have negative energies (first at row 83)"),
        "non-finite": (raw("nan.hdf5", incident_energies=inc, showers=nan), "",
                       "showers have non-finite energies (first at row 90)"),
        "(N,) energies": (raw("flat.hdf5", incident_energies=inc[:, 0], showers=showers), "",
                          f"incident_energies has shape ({n},) instead of ({n}, 1)"),
        "lengths": (raw("len.hdf5", incident_energies=inc[:150], showers=showers), "",
                    f"incident_energies has 150 rows but showers has {n}"),
        "empty": (str(d / "empty.hdf5"), "", "empty file (0 bytes)"),
        "truncated": (str(d / "cut.hdf5"), "", "not a readable HDF5 file (truncated file"),
    }


CASES = ["voxel count", "negative", "non-finite", "(N,) energies", "lengths", "empty", "truncated"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path, shower_files, scheduler, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    path, _, message = _bad_files(inputs, shower_files["ds2"])[case]
    out = tmp_path / "s"
    # Small fragments: the bad rows (83, 90) lie in a late block, after others were committed.
    r = run_cli("pcdata", "ingest", "calochallenge", "--geometry", "ds2", str(shower_files["ds2"]), path,
                "--out", str(out), "--scheduler", scheduler, "--rows-per-fragment", "20", "--quiet")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    expected = f"error: {path}: {message}"
    assert len(lines) == 1, r.stderr
    # Some messages go on with detail (HDF5's eof address, the evaluator's need for [N, 1]).
    assert lines[0].startswith(expected), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_unknown_geometry_and_bad_options_are_one_line(tmp_path, shower_files):
    r = run_cli("pcdata", "ingest", "calochallenge", str(shower_files["ds2"]), "--geometry", "ds4",
                "--out", str(tmp_path / "s"))
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --geometry: unknown calorimeter geometry 'ds4', "
                                "expected one of ds1-photons, ds1-pions, ds2, ds3")
    with pytest.raises(SourceError, match="showers have 6480 voxels but geometry ds3 has 40500 \\(matches ds2\\)"):
        ingest_calochallenge([shower_files["ds2"]], tmp_path / "s", geometry="ds3", cluster={"workers": 1}, options=IngestOptions(progress=False))
    assert not (tmp_path / "s").exists()


def test_gpu_without_a_gpu_exits_2_and_writes_nothing(tmp_path, shower_files):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "s"
    r = run_cli("pcdata", "ingest", "calochallenge", "--geometry", "ds2", str(shower_files["ds2"]), "--out", str(out),
                "--gpu", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --gpu: no CUDA GPU is available on this machine (torch.cuda.is_available() is False)"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_gpu_on_a_scheduler_without_gpu_workers_writes_nothing(tmp_path, shower_files, scheduler):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ClusterError, match=r"gpu: the Dask workers have no CUDA GPU \(tcp://"):
        ingest_calochallenge([shower_files["ds2"]], tmp_path / "s", geometry="ds2", gpu=True, cluster=scheduler, options=IngestOptions(progress=False))
    assert list(tmp_path.iterdir()) == []


def _has_cuda() -> bool:
    try:
        import dask_cuda  # noqa: F401
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU with torch and dask-cuda")
def test_gpu_ingest_equals_the_cpu_store(tmp_path, shower_files, scheduler):
    for geometry in ("ds1-photons", "ds2"):
        path = [shower_files[geometry]]
        cpu = ingest_calochallenge(path, tmp_path / f"cpu-{geometry}", geometry=geometry, cluster=scheduler, options=IngestOptions(rows_per_fragment=40, progress=False))
        gpu = ingest_calochallenge(path, tmp_path / f"gpu-{geometry}", geometry=geometry, gpu=True, options=IngestOptions(rows_per_fragment=40, progress=False))
        assert [f.to_dict() for f in gpu.fragments] == [f.to_dict() for f in cpu.fragments]
        assert gpu.stats == cpu.stats and gpu.read().equals(cpu.read())
        _, showers = _arrays(export_calochallenge(gpu, tmp_path / f"{geometry}.hdf5"))
        assert _same_bits(showers, _arrays(path[0])[1])
