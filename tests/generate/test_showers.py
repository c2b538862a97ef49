"""Tests of pcdata.generate.showers: shower physics, reproducibility, the file, the CLI command."""

from __future__ import annotations

import filecmp

import h5py
import numpy as np
import pytest

from pcdata.geometry.calo import get_geometry
from pcdata.geometry.voxels import READOUT_THRESHOLD_MEV
from pcdata.errors import GenerateError
from pcdata.generate.showers import (
    PARTITION_SIZE,
    generate_showers,
    sample_incident_energies,
    simulate_showers,
)
from pcdata.sources.calochallenge import inspect_calochallenge_file, read_calochallenge_block
from tests.conftest import run_cli

ENERGIES_GEV = (1, 10, 100, 1000)
PER_ENERGY = 40


@pytest.fixture(scope="module")
def ds2_by_energy() -> dict[int, np.ndarray]:
    """ds2 showers at four fixed energies, 1 GeV .. 1 TeV."""
    rng = np.random.default_rng(11)
    return {e: simulate_showers(np.full(PER_ENERGY, e * 1000.0), geometry="ds2", seed=rng) for e in ENERGIES_GEV}


def _summary(by_energy):
    g = get_geometry("ds2")
    out = {}
    for e, s in by_energy.items():
        total = s.sum(axis=1, dtype=np.float64)
        out[e] = {
            "hits": (s > 0).sum(axis=1),
            "ratio": total / (e * 1000.0),
            "layer": (s @ g.voxel_layer.astype(np.float64)) / total,
        }
    return out


def test_number_of_hits_grows_with_energy_to_about_a_thousand(ds2_by_energy):
    hits = [_summary(ds2_by_energy)[e]["hits"].mean() for e in ENERGIES_GEV]
    assert all(a < b for a, b in zip(hits, hits[1:])), hits
    # The real ds2 has ~1600 hits on average, up to ~5600: the model should be of that order.
    assert 500 < hits[-1] < 10000, hits
    assert hits[0] < 300, hits


def test_longitudinal_peak_moves_deeper_as_log_energy(ds2_by_energy):
    s = _summary(ds2_by_energy)
    mean_layer = np.array([s[e]["layer"].mean() for e in ENERGIES_GEV])
    ln_e = np.log(ENERGIES_GEV)
    slope, intercept = np.polyfit(ln_e, mean_layer, 1)
    residual = mean_layer - (slope * ln_e + intercept)
    assert slope > 0.5  # layers per e-fold; T_max ~ ln(E/Ec) with ~0.8 X0 per layer gives ~1.2
    assert np.abs(residual).max() < 0.5, (mean_layer, residual)
    steps = np.diff(mean_layer)
    assert steps.min() > 0 and steps.max() / steps.min() < 2, steps  # equal steps per decade


def test_energy_ratio_is_near_constant_with_shrinking_spread(ds2_by_energy):
    s = _summary(ds2_by_energy)
    means = np.array([s[e]["ratio"].mean() for e in ENERGIES_GEV])
    stds = np.array([s[e]["ratio"].std() for e in ENERGIES_GEV])
    assert np.ptp(means) < 0.05 and 0.4 < means.mean() < 0.8, means
    assert all(a > b for a, b in zip(stds, stds[1:])), stds
    assert stds[0] / stds[-1] > 5, stds  # ~ 1/sqrt(E): a factor ~30 expected over 3 decades


def test_readout_threshold_and_dtype(ds2_by_energy):
    s = ds2_by_energy[1]
    assert s.dtype == np.float32 and s.shape == (PER_ENERGY, 6480)
    assert s[s > 0].min() >= np.float32(READOUT_THRESHOLD_MEV)
    assert (s >= 0).all()


def test_incident_energy_spectra():
    rng = np.random.default_rng(0)
    ds1 = sample_incident_energies(3000, "ds1-photons", rng)
    assert set(np.unique(ds1).tolist()) == {2.0**k for k in range(8, 23)}
    ds2 = sample_incident_energies(3000, "ds2", rng)
    assert ds2.dtype == np.float32 and ds2.min() >= 1e3 and ds2.max() <= 1e6
    assert abs(np.log10(ds2).mean() - 4.5) < 0.05  # log-uniform


@pytest.mark.parametrize("geometry", ["ds1-photons", "ds1-pions", "ds3"])
def test_other_geometries(geometry):
    g = get_geometry(geometry)
    s = simulate_showers(np.full(4, 8192.0), geometry=geometry, seed=1)
    assert s.shape == (4, g.n_voxels) and (s > 0).sum(axis=1).min() > 20
    ratio = s.sum(axis=1) / 8192.0
    assert ((ratio > 0.2) & (ratio < 1.0)).all()


def test_same_seed_same_file_for_any_number_of_workers(tmp_path):
    n = 2 * PARTITION_SIZE + 44  # three partitions, the last one short
    one = generate_showers(tmp_path / "w1.hdf5", geometry="ds2", num_showers=n, seed=5, workers=1, progress=False)
    two = generate_showers(tmp_path / "w2.hdf5", geometry="ds2", num_showers=n, seed=5, workers=2, progress=False)
    assert one.num_showers == two.num_showers == n and two.workers == 2 and one.showers_per_second > 0
    assert filecmp.cmp(one.path, two.path, shallow=False)  # byte-identical
    other = generate_showers(tmp_path / "s6.hdf5", geometry="ds2", num_showers=n, seed=6, progress=False)
    with h5py.File(one.path) as a, h5py.File(other.path) as b:
        assert not np.array_equal(a["showers"][:10], b["showers"][:10])


def test_generated_file_is_a_valid_calochallenge_file(tmp_path):
    path = tmp_path / "p.hdf5"
    generate_showers(path, geometry="ds1-pions", num_showers=30, seed=1, progress=True)
    info = inspect_calochallenge_file(path, "ds1-pions")
    clouds = read_calochallenge_block(info, 0, 30)
    assert info.n_showers == 30 and (clouds.fields["num_points"] > 0).all()
    with h5py.File(path) as f:
        assert sorted(f.keys()) == ["incident_energies", "showers"]
        assert f["incident_energies"].shape == (30, 1) and f["showers"].compression == "gzip"
        assert f.attrs["geometry"] == "ds1-pions" and f.attrs["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["p.hdf5"]  # no temporary left


def test_bad_arguments_raise_before_any_work(tmp_path):
    with pytest.raises(GenerateError, match="num_showers must be at least 1"):
        generate_showers(tmp_path / "x.hdf5", geometry="ds2", num_showers=0)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        generate_showers(tmp_path / "x.hdf5", geometry="ds2", num_showers=1, workers=0)
    with pytest.raises(ValueError, match="does not exist"):
        generate_showers(tmp_path / "no" / "x.hdf5", geometry="ds2", num_showers=1)
    with pytest.raises(ValueError, match="unknown calorimeter geometry"):
        generate_showers(tmp_path / "x.hdf5", geometry="ds9", num_showers=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_generates_a_file(tmp_path):
    out = tmp_path / "cli.hdf5"
    r = run_cli("pcdata", "generate", "showers", "--geometry", "ds2", "--num-showers", "20", "--seed", "3",
                "--out", str(out), "--workers", "1", "--quiet", check=True)
    assert f"wrote {out}: 20 ds2 showers" in r.stdout
    assert inspect_calochallenge_file(out, "ds2").n_showers == 20


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-showers", "0"], "error: --num-showers must be at least 1, got 0"),
        (["--num-showers", "5", "--workers", "0"], "error: --workers must be at least 1, got 0"),
        (["--num-showers", "5", "--out", "/nonexistent-dir/x.hdf5"], "directory /nonexistent-dir does not exist"),
        (["--num-showers", "5", "--geometry", "ds4"], "--geometry: expected one of ds1-photons, ds1-pions, ds2, ds3, got 'ds4'"),
    ],
    ids=["zero-showers", "zero-workers", "missing-directory", "unknown-geometry"],
)
def test_cli_bad_argument_exits_2_with_one_line(tmp_path, args, message):
    base = {"--geometry": "ds2", "--out": str(tmp_path / "x.hdf5")}
    given = dict(zip(args[::2], args[1::2]))
    argv = [v for k, val in {**base, **given}.items() for v in (k, val)]
    r = run_cli("pcdata", "generate", "showers", *argv, "--quiet")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert not (tmp_path / "x.hdf5").exists()


def test_cli_missing_option_is_a_usage_error(tmp_path):
    r = run_cli("pcdata", "generate", "showers", "--geometry", "ds2", "--out", str(tmp_path / "x.hdf5"))
    assert r.returncode == 2 and "--num-showers" in r.stderr
