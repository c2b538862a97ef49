"""Sampling from a trained run: the CLI writes a store or a JetNet file; conditions from the field model."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from pcdata import open_store
from pcdata.ingest import ingest_jetnet
from pcmodels.conditioning import CloudFieldModel
from pcmodels.training import load_config, train
from tests.conftest import run_cli

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def run(tmp_path_factory, jetnet_files, scheduler):
    d = tmp_path_factory.mktemp("sample")
    store = ingest_jetnet(jetnet_files[:1], d / "s", scheduler=scheduler, progress=False)
    cfg = load_config(None, model="epic-jedi", steps=6, batch_size=64, hidden=16, latent=4, layers=1, time_dim=8,
                      pad=30, checkpoint_every=3, sample_steps=4)
    train(store.path, d / "run", cfg, progress=False)
    return d / "run", store


@pytest.mark.parametrize("solver", ["ddim", "ddpm", "rk4"])
def test_sample_cli_writes_a_store_every_tool_reads(tmp_path, run, solver):
    path, real = run
    out = tmp_path / "gen"
    r = run_cli("pcmodels", "sample", "--run", str(path), "--num", "50", "--out", str(out), "--solver", solver,
                "--steps", "3", "--batch-size", "32", check=True)
    assert f"50 clouds with {solver} x 3 steps" in r.stdout
    gen = open_store(out)
    assert gen.num_clouds == 50 and gen.point_features == real.point_features
    assert gen.cloud_features == ("pt", "mass", "num_particles")
    assert np.isfinite(gen.read().points).all()
    # Multiplicities come from the run's field model: values seen in training, at most P = 30.
    assert set(gen.counts.tolist()) <= set(np.minimum(real.counts, 30).tolist())
    assert gen.meta.attrs["sampling"]["solver"] == solver


def test_sample_cli_jetnet_layout_and_errors(tmp_path, run):
    path, _ = run
    out = tmp_path / "gen.hdf5"
    run_cli("pcmodels", "sample", "--run", str(path), "--num", "20", "--out", str(out), "--format", "jetnet-hdf5",
            "--steps", "2", check=True)
    with h5py.File(out) as f:
        assert f["particle_features"].shape == (20, 30, 4) and f["jet_features"].shape == (20, 4)
    bad = run_cli("pcmodels", "sample", "--run", str(path), "--num", "0", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --num must be >= 1, got 0"
    assert not (tmp_path / "x").exists()
    missing = run_cli("pcmodels", "sample", "--run", str(tmp_path), "--num", "5", "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path}: not a training run (no run.json)"
    assert not (tmp_path / "y").exists()


def test_field_model_keeps_integers_exact_and_smooths_the_rest():
    rng = np.random.default_rng(0)
    counts = rng.integers(10, 30, 5000)
    mass = rng.normal(170, 20, 5000) + counts
    model = CloudFieldModel.fit({"mass": mass, "num_particles": counts.astype(float)}, counts)
    assert model.discrete == (False, True) and model.bandwidth[1] == 0.0 and model.bandwidth[0] > 0
    n, fields = model.sample(20000, torch.Generator().manual_seed(1))
    assert set(n.tolist()) <= set(counts.tolist()) and np.array_equal(fields["num_particles"], n)
    assert abs(fields["mass"].mean() - mass.mean()) < 1.0 and abs(fields["mass"].std() - mass.std()) < 1.5
    # The joint distribution survives: mass still grows with the multiplicity.
    assert np.corrcoef(fields["mass"], n)[0, 1] == pytest.approx(np.corrcoef(mass, counts)[0, 1], abs=0.05)
    again = CloudFieldModel.restore(model.tensors(), model.meta())
    assert np.array_equal(again.sample(10, torch.Generator().manual_seed(3))[0], model.sample(10, torch.Generator().manual_seed(3))[0])
