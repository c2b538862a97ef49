"""The shower models (every registered model of kind ``showers``) on a real ds2 shower store:
training from the store's transforms, padding and chunking that change nothing, exact resume,
2-process DDP, and generated showers that are valid CaloChallenge showers."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pcdata import open_store
from pcdata.geometry.calo import get_geometry
from pcdata.geometry.voxels import clouds_to_voxels
from pcmodels.config import load_config
from pcmodels.registry import get_model, model_names
from pcmodels.run import Run
from pcmodels.sampling import generate_clouds, sample
from pcmodels.sampling.showers import _assign_alpha, finish_showers
from pcmodels.training import Stepper, Trainer, train
from pcmodels.training.step import Context, split_batch, step_generator
from pcmodels.training.trainer import data_loader
from tests.conftest import REPO, run_cli

MODELS = tuple(m for m in model_names() if "showers" in get_model(m).kinds)


def tiny(model: str, **kw):
    spec = get_model(model)
    role = "tiny-showers" if "tiny-showers" in spec.configs else "tiny"
    return load_config(spec.config_path(role), **kw)


def params(method) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": p.detach().clone() for n, m in method.modules.items() for k, p in m.named_parameters()}


@pytest.fixture(scope="module")
def runs(ds2_store, tmp_path_factory):
    d = tmp_path_factory.mktemp("shower-runs")
    for model in MODELS:
        train(ds2_store, d / model, tiny(model), progress=False)
    return {m: d / m for m in MODELS}


def test_the_shower_models_are_registered():
    assert set(MODELS) == {"calopointflow", "deeptree", "mdma"}


@pytest.mark.parametrize("model", MODELS)
def test_steps_are_finite_and_padding_never_matters(ds2_store, tmp_path, model):
    cfg = tiny(model)
    trainer = Trainer(ds2_store, tmp_path / "run", cfg, progress=False)
    batches = [b for _, b in zip(range(3), data_loader(trainer.store, cfg))]
    steppers = []
    for _ in range(2):
        torch.manual_seed(0)
        method = get_model(model).method(cfg, trainer.data)
        steppers.append(Stepper(method, cfg.optim, total_steps=10, seed=0, ema=0.0, device=torch.device("cpu"),
                                max_points=cfg.data.max_points))
    a, b = steppers
    for batch in batches:
        m = batch["mask"]
        # Padding filled with garbage: nothing a real point sees may change, not even the last bit.
        garbage = {**batch, "points": batch["points"].masked_fill(~m.unsqueeze(-1), 1e3)}
        out_a, out_b = a.train_batch(batch), b.train_batch(garbage)
        assert out_a and all(np.isfinite(v) for v in out_a.values()), out_a
        assert out_a == out_b
    pa, pb = params(a.method), params(b.method)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_split_batch_covers_each_cloud_once_under_the_cap():
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 400, (64,), generator=g)
    mask = torch.arange(400).expand(64, 400) < counts.unsqueeze(1)
    batch = {"points": torch.randn(64, 400, 3, generator=g) * mask.unsqueeze(-1), "mask": mask,
             "cloud": torch.randn(64, 3, generator=g), "index": torch.arange(64)}
    parts = split_batch(batch, 3000)
    rows = torch.cat([p["rows"] for p, _ in parts])
    assert sorted(rows.tolist()) == list(range(64))
    assert sum(share for _, share in parts) == pytest.approx(1.0)
    for part, share in parts:
        n = part["mask"].shape[1]
        assert part["mask"].numel() <= 3000 or len(part["rows"]) == 1
        assert n == int(part["mask"].sum(1).max())  # trimmed to its longest cloud
        assert torch.equal(part["points"], batch["points"][part["rows"], :n])
        assert torch.equal(part["index"], batch["index"][part["rows"]]) and share == len(part["rows"]) / 64
    # Sorted chunks waste less than padding the whole batch to its longest cloud.
    padded = sum(p["mask"].numel() for p, _ in parts)
    assert padded < 0.75 * 64 * int(counts.max())


def test_pointflow_gradient_is_the_same_with_and_without_the_point_cap(ds2_store, tmp_path):
    cfg = tiny("calopointflow")
    trainer = Trainer(ds2_store, tmp_path / "run", cfg, progress=False)
    batch = next(iter(data_loader(trainer.store, cfg)))
    grads = []
    for cap in (None, 600):
        torch.manual_seed(0)
        method = get_model("calopointflow").method(cfg, trainer.data)
        stepper = Stepper(method, {"flow": cfg.optim["flow"]}, total_steps=1, seed=0, ema=0.0,
                          device=torch.device("cpu"), max_points=cap)
        stepper.finish = lambda name: None  # keep the accumulated gradients, do not step
        ctx = Context(stepper, 0, step_generator(0, 0))
        out = {**method.train_step(batch, ctx), "padding": ctx.padding}
        grads.append((out, {k: p.grad.clone() for k, p in method.modules["flow"].named_parameters()}))
    (a, ga), (b, gb) = grads
    # Validation cuts batches the same way (bounded memory) and scores the same.
    torch.manual_seed(0)
    whole = get_model("calopointflow").method(cfg, trainer.data)
    torch.manual_seed(0)
    capped = get_model("calopointflow").method(cfg, trainer.data)
    whole.max_points, capped.max_points = None, 600
    assert whole.validate([batch])["val_loss"] == pytest.approx(capped.validate([batch])["val_loss"], rel=1e-5)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert b["padding"] < a["padding"]  # chunks of similar multiplicity pad less
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
    assert max(float(g.abs().max()) for g in ga.values()) > 0


@pytest.mark.parametrize("model", MODELS)
def test_resume_gives_the_uninterrupted_weights(ds2_store, tmp_path, model):
    train(ds2_store, tmp_path / "ref", tiny(model, steps=12), progress=False)
    cfg = tiny(model, steps=12, overrides=("train.checkpoint_every=5",))
    ref = Run.open(tmp_path / "ref").load_checkpoint()[0]
    trainer = Trainer(ds2_store, tmp_path / "run", cfg, progress=False)
    trainer.total = 7  # stop early (as a killed run would, after its checkpoint at 5), then resume
    trainer.fit()
    again = Trainer(ds2_store, tmp_path / "run", cfg, progress=False)
    assert again.stepper.step == 7
    again.fit()
    got = Run.open(tmp_path / "run").load_checkpoint()[0]
    for k in ref:
        if k.startswith(("module.", "ema.", "optim.")):
            assert torch.equal(ref[k], got[k]), k


@pytest.mark.parametrize("model", MODELS)
def test_generated_showers_are_valid_and_reproducible(runs, ds2_store, model):
    run = Run.open(runs[model])
    geo = get_geometry("ds2")
    a, info = generate_clouds(run, 120, seed=4, batch_size=50, progress=False)
    b, _ = generate_clouds(run, 120, seed=4, batch_size=50, progress=False)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    assert a.point_features == ("layer", "alpha_bin", "r_bin", "energy")
    layer, alpha, r = (a.points[:, i].astype(np.int64) for i in range(3))
    assert np.array_equal(a.points[:, :3], np.floor(a.points[:, :3]))
    assert geo.valid_cell(layer, alpha, r).all()
    assert (a.points[:, 3] > 0).all() and np.isfinite(a.points).all()
    # One hit per cell, and the shower fields describe the hits kept.
    shower = np.repeat(np.arange(len(a)), a.counts)
    flat = shower * geo.n_voxels + geo.cell_to_voxel(layer, alpha, r)
    assert len(np.unique(flat)) == len(flat)
    assert np.array_equal(a.fields["num_points"], a.counts)
    np.testing.assert_allclose(a.fields["energy_sum"], np.bincount(shower, a.points[:, 3].astype(np.float64),
                                                                   minlength=len(a)), rtol=1e-6)
    assert info["model"] == model and info["ms_per_cloud"] > 0


def test_pointflow_draws_hits_and_energy_sum_and_renormalises_to_it(runs):
    run = Run.open(runs["calopointflow"])
    clouds, _ = generate_clouds(run, 100, seed=1, progress=False)
    # The counts are the model's own (not the field model's), bounded by the longest training shower.
    field_counts, _ = run.fieldmodel().sample(100, torch.Generator().manual_seed(1))
    assert not np.array_equal(clouds.counts, field_counts)
    assert clouds.counts.max() <= run.data.max_points


@pytest.mark.parametrize("model", MODELS)
def test_incident_energies_log_uniform_or_from_a_real_split(runs, ds2_store, model, tmp_path):
    store = open_store(ds2_store)
    test = store.split_indices("test")
    clouds, _ = generate_clouds(runs[model], len(test), incident=str(ds2_store), progress=False)
    assert np.array_equal(clouds.fields["incident_energy"], store.field("incident_energy")[test])
    uni, _ = generate_clouds(runs[model], 500, incident="log-uniform", seed=2, progress=False)
    e = uni.fields["incident_energy"]
    assert e.min() >= 1e3 and e.max() <= 1e6
    # log-uniform: each decade gets about a third.
    assert np.allclose(np.histogram(np.log10(e), bins=[3, 4, 5, 6])[0] / 500, 1 / 3, atol=0.07)


@pytest.mark.parametrize("model", MODELS)
def test_sample_writes_an_official_calochallenge_file(runs, tmp_path, model):
    import h5py

    from pcmodels.evaluation.shower_samples import open_showers

    r = sample(runs[model], 60, tmp_path / "gen.hdf5", fmt="calochallenge-hdf5", incident="log-uniform", seed=3,
               progress=False)
    assert r["num"] == 60
    with h5py.File(tmp_path / "gen.hdf5") as f:
        assert set(f) == {"incident_energies", "showers"}
        inc, showers = f["incident_energies"][:], f["showers"][:]
    assert inc.shape == (60, 1) and inc.dtype == np.float64 and showers.shape == (60, 6480)
    assert showers.dtype == np.float32 and (showers >= 0).all()
    clouds, _ = generate_clouds(runs[model], 60, incident="log-uniform", seed=3, progress=False)
    ref_inc, ref_showers = clouds_to_voxels(clouds, "ds2")
    assert np.array_equal(showers, ref_showers) and np.array_equal(inc, ref_inc.astype(np.float64))
    sample_ = open_showers(str(tmp_path / "gen.hdf5"))
    assert sample_.geometry == "ds2" and sum(len(i) for i, _ in sample_.blocks()) == 60


def test_alpha_assignment_is_without_replacement_within_a_cell():
    rng = np.random.default_rng(0)
    # Shower 0: 40 hits in one cell (n_alpha 16: groups of 16, 16, 8); shower 1: 5 hits in another.
    shower = np.r_[np.zeros(40, np.int64), np.ones(5, np.int64)]
    layer = np.r_[np.full(40, 3), np.full(5, 7)]
    r = np.r_[np.full(40, 2), np.full(5, 0)]
    alpha = _assign_alpha(shower, layer, r, np.full(45, 16), rng)
    assert alpha.min() >= 0 and alpha.max() < 16
    counts = np.bincount(alpha[:40], minlength=16)
    assert counts.min() >= 2 and counts.max() <= 3  # two full groups cover every bin once each
    assert len(set(alpha[40:].tolist())) == 5
    # Random: another draw differs.
    assert not np.array_equal(alpha, _assign_alpha(shower, layer, r, np.full(45, 16), np.random.default_rng(1)))


def test_mdma_finishing_turns_alpha_once_per_shower_and_clamps_into_the_grid():
    rng = np.random.default_rng(0)
    pts = np.array([[0, 0, 0, 5.0], [0, 3, 0, 1.0], [44, 20, 12, 2.0],  # alpha and r beyond the grid
                    [-1.2, 2.7, 1.5, 3.0]], dtype=np.float32)
    out = finish_showers("mdma-showers", pts, ("layer", "alpha_bin", "r_bin", "energy"), np.array([0, 2, 4]),
                         {"incident_energy": np.array([1e4, 2e4])}, "ds2", rng)
    first = out.points[:2]
    assert (first[1, 1] - first[0, 1]) % 16 == 3 or (first[0, 1] - first[1, 1]) % 16 == 3  # the same turn for both
    second = out.points[2:]
    assert second[:, 0].min() == 0 and second[:, 0].max() == 44 and second[:, 2].max() == 8
    assert out.fields["num_points"].tolist() == [2, 2]


def test_shower_bad_input_is_one_line_and_leaves_nothing(runs, tmp_path, ds2_store, jetnet_files):
    r = run_cli("pcmodels", "sample", "--run", str(runs["mdma"]), "--num", "5", "--out", str(tmp_path / "x.h5"),
                "--format", "jetnet-hdf5")
    assert r.returncode == 2 and "is a run of showers" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("pcmodels", "sample", "--run", str(runs["mdma"]), "--num", "5", "--out", str(tmp_path / "y.h5"),
                "--format", "calochallenge-hdf5", "--incident", str(tmp_path / "missing.h5"))
    assert r.returncode == 2 and "--incident" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("pcmodels", "sample", "--run", str(runs["mdma"]), "--num", "5000", "--out", str(tmp_path / "z.h5"),
                "--format", "calochallenge-hdf5", "--incident", str(ds2_store))
    assert r.returncode == 2 and "fewer than num=5000" in r.stderr
    assert not any(tmp_path.iterdir())
    cfg = get_model("calopointflow").config_path("tiny")
    r = run_cli("pcmodels", "train", "--store", str(ds2_store), "--out", str(tmp_path / "run"), "--config", str(cfg),
                "--set", "data.cond_fields=[incident_energy]", "--quiet")
    assert r.returncode == 2 and "data.cond_fields" in r.stderr and not (tmp_path / "run").exists()
    r = run_cli("pcmodels", "train", "--store", str(ds2_store), "--out", str(tmp_path / "run"), "--model", "mdma",
                "--config", str(get_model("mdma").config_path("tiny-showers")), "--set", "data.max_points=100", "--quiet")
    assert r.returncode == 2 and "data.max_points" in r.stderr and not (tmp_path / "run").exists()


DDP_SCRIPT = """
import sys
from safetensors.torch import save_file
from pcmodels.config import load_config
from pcmodels.training import Trainer
store, out, config, steps = sys.argv[1:]
trainer = Trainer(store, out, load_config(config, steps=int(steps)), progress=False)
trainer.fit()
save_file({f"{n}.{k}": p.detach().contiguous() for n, m in trainer.method.modules.items()
           for k, p in m.named_parameters()}, f"{out}.rank{trainer.dist.rank}.safetensors")
"""


@pytest.mark.slow
@pytest.mark.distributed
def test_pointflow_two_ranks_with_chunks_equal_one_process_on_the_union_batch(tmp_path, ds2_store):
    """Ranks share gradients through chunked accumulation (no_sync on all chunks but the last)."""
    from safetensors.torch import load_file

    config, steps = get_model("calopointflow").config_path("tiny"), 3
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(ds2_store), str(out), str(config), str(steps)], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"ddp.rank{k}.safetensors")) for k in (0, 1))
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k
    cfg = load_config(config, steps=steps)
    single = Trainer(ds2_store, tmp_path / "single", cfg, progress=False)
    initial = params(single.method)
    loaders = [iter(data_loader(single.store, cfg, rank=k, world_size=2)) for k in (0, 1)]
    for _ in range(steps):
        b0, b1 = (next(it) for it in loaders)
        n = max(b0["points"].shape[1], b1["points"].shape[1])
        pad = lambda b, key: torch.nn.functional.pad(b[key], (0, 0, 0, n - b[key].shape[1]) if key == "points"  # noqa: E731
                                                     else (0, n - b[key].shape[1]))
        union = {k: torch.cat([pad(b0, k), pad(b1, k)]) if k in ("points", "mask") else torch.cat([b0[k], b1[k]])
                 for k in b0}
        single.stepper.train_batch(union)
    got = params(single.method)
    moved = 0.0
    for k, v in rank0.items():
        torch.testing.assert_close(v, got[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
        moved = max(moved, float((v - initial[k]).abs().max()))
    assert moved > 1e-4
