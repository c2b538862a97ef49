"""Sampling from a trained run through the CLI: a store every tool reads, or a JetNet file; errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from pcdata import open_store
from pcdata.ingest import IngestOptions, ingest_jetnet
from pcmodels.conditioning import CloudFieldModel
from pcmodels.config import load_config
from pcmodels.registry import get_model
from pcmodels.training import train
from tests.conftest import run_cli

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def run(tmp_path_factory, jetnet_files, scheduler):
    d = tmp_path_factory.mktemp("sample")
    store = ingest_jetnet(jetnet_files[:1], d / "s", cluster=scheduler, options=IngestOptions(progress=False))
    train(store.path, d / "run", load_config(get_model("epic-jedi").config_path("tiny"), steps=6), progress=False)
    return d / "run", store


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "rk4"])
def test_sample_cli_writes_a_store_every_tool_reads(tmp_path, run, sampler):
    path, real = run
    out = tmp_path / "gen"
    r = run_cli("pcmodels", "sample", "--run", str(path), "--num", "50", "--out", str(out), "--sampler", sampler,
                "--steps", "3", "--batch-size", "32", check=True)
    assert f"50 clouds with {sampler} x 3 steps" in r.stdout
    gen = open_store(out)
    assert gen.num_clouds == 50 and gen.point_features == real.point_features
    assert gen.cloud_features == ("pt", "mass", "num_particles")
    assert np.isfinite(gen.read().points).all()
    # Multiplicities come from the run's field model: values seen in training, at most P = 30.
    assert set(gen.counts.tolist()) <= set(np.minimum(real.counts, 30).tolist())
    assert gen.meta.attrs["sampling"]["sampler"] == sampler


def test_sample_cli_jetnet_layout_and_errors(tmp_path, run):
    path, _ = run
    out = tmp_path / "gen.hdf5"
    run_cli("pcmodels", "sample", "--run", str(path), "--num", "20", "--out", str(out), "--format", "jetnet-hdf5",
            "--steps", "2", check=True)
    with h5py.File(out) as f:
        assert f["particle_features"].shape == (20, 30, 4) and f["jet_features"].shape == (20, 4)
    for args, message in [(["--num", "0"], "error: --num: must be >= 1, got 0"),
                          (["--num", "5", "--sampler", "direct"], "error: --sampler: sampler 'direct' is not one of "
                                                                  "ddpm, ddim, euler, midpoint, rk4 for epic-jedi"),
                          (["--num", "5", "--steps", "0"], "error: --steps must be >= 1, got 0")]:
        bad = run_cli("pcmodels", "sample", "--run", str(path), "--out", str(tmp_path / "x"), *args)
        assert bad.returncode == 2 and bad.stderr.strip() == message, bad.stderr
        assert not (tmp_path / "x").exists()
    missing = run_cli("pcmodels", "sample", "--run", str(tmp_path), "--num", "5", "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path}: not a training run (no run.json)"
    assert not (tmp_path / "y").exists()


def test_models_cli_lists_the_registry():
    import json

    r = run_cli("pcmodels", "models", "--json", check=True)
    listed = {m["name"]: m for m in json.loads(r.stdout)}
    assert set(listed) >= {"epic-fm", "epic-jedi", "mdma", "calopointflow"}
    assert listed["mdma"]["networks"] == ["generator", "critic"] and listed["mdma"]["samplers"] == ["direct"]
    assert all("tiny" in m["configs"] for m in listed.values())
    assert listed["epic-fm"]["kinds"] == ["jets"] and listed["mdma"]["kinds"] == ["jets", "showers"]
    assert listed["calopointflow"]["kinds"] == ["showers"] and listed["calopointflow"]["networks"] == ["flow"]
    assert {"ds2", "ds3", "small"} <= set(listed["calopointflow"]["configs"])
    assert {"ds2", "ds3", "small-showers"} <= set(listed["mdma"]["configs"])
    text = run_cli("pcmodels", "models", check=True).stdout
    assert "mdma" in text and "samplers: midpoint, euler, rk4" in text


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
