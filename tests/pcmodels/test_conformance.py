"""The conformance suite: every registered model must pass it (a new model is tested by registering it).

Each model is run with its registered ``tiny`` config: finite losses on a toy set, padding that
never influences real points, learning the toy distribution, bit-identical resume after kill -9,
reproducible sampling that respects the mask and the multiplicity model, and 2-process DDP equal
to one process on the union of the ranks' batches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pcdata import open_store
from pcdata.ingest import IngestOptions, ingest_jetnet
from pcmodels.config import load_config
from pcmodels.methods.base import DataSpec
from pcmodels.registry import get_model, model_names
from pcmodels.run import Run
from pcmodels.sampling import generate_clouds
from pcmodels.training import Stepper, Trainer, train
from pcmodels.training.trainer import data_loader
from tests.conftest import REPO

# Models of jets; the shower models have their own suite (test_showers.py).
MODELS = tuple(m for m in model_names() if "jets" in get_model(m).kinds)
TOY = DataSpec(("a", "b"), ("centre",), 8, 5.5, (-4.0, -4.0), (4.0, 4.0))


def toy_batch(n: int, g: torch.Generator) -> dict:
    """2-d clouds of 3-8 points around (c, -c), c given as the condition (spread 0.1)."""
    centre = torch.randn(n, 1, generator=g)
    x = torch.randn(n, 8, 2, generator=g) * 0.1 + torch.cat([centre, -centre], 1).unsqueeze(1)
    mask = torch.arange(8).expand(n, 8) < torch.randint(3, 9, (n, 1), generator=g)
    return {"points": x * mask.unsqueeze(-1), "mask": mask, "cloud": centre}


def toy_stepper(model: str, steps: int) -> Stepper:
    cfg = load_config(get_model(model).config_path("tiny"))
    torch.manual_seed(0)
    method = get_model(model).method(cfg, TOY)
    return Stepper(method, cfg.optim, total_steps=steps, seed=0, ema=cfg.train.ema, device=torch.device("cpu"))


def params(method) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": p.detach().clone() for n, m in method.modules.items() for k, p in m.named_parameters()}


@pytest.mark.parametrize("model", MODELS)
def test_steps_give_finite_losses_and_padding_never_matters(model):
    g = torch.Generator().manual_seed(5)
    batches = [toy_batch(16, g) for _ in range(3)]
    a, b = toy_stepper(model, 10), toy_stepper(model, 10)
    for batch in batches:
        garbage = {**batch, "points": batch["points"].masked_fill(~batch["mask"].unsqueeze(-1), 1e3)}
        out_a, out_b = a.train_batch(batch), b.train_batch(garbage)
        assert out_a and all(np.isfinite(v) for v in out_a.values()), out_a
        assert out_a == out_b  # the padded values changed nothing, not even in the last bit
    pa, pb = params(a.method), params(b.method)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    # The weights moved: the steps really trained every optimised module.
    fresh = params(toy_stepper(model, 10).method)
    for name in a.optimisers:
        assert any(not torch.equal(pa[k], fresh[k]) for k in pa if k.startswith(name + ".")), name


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_learns_the_toy_distribution(model):
    stepper = toy_stepper(model, 400)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        stepper.train_batch(toy_batch(128, g))
    batch = toy_batch(512, g)
    mask = batch["mask"]
    with stepper.ema_weights() as method:
        out = method.sample(mask, batch["cloud"], generator=torch.Generator().manual_seed(3), steps=30)
    assert (out[~mask] == 0).all()
    mean = (out * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    # Each cloud's centre follows its condition, at (c, -c), with the toy's small spread.
    corr = torch.corrcoef(torch.stack([mean[:, 0], batch["cloud"][:, 0]]))[0, 1]
    assert corr > 0.9, (model, float(corr))
    assert float((mean[:, 0] + mean[:, 1]).abs().mean()) < 0.2
    spread = float((out - mean.unsqueeze(1))[mask].std())
    assert 0.05 < spread < 0.25, (model, spread)


# -- through a real store ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory, jetnet_files, scheduler):
    return ingest_jetnet(jetnet_files[:1], tmp_path_factory.mktemp("conf") / "s", cluster=scheduler, options=IngestOptions(progress=False)).path


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    out = {}
    for model in MODELS:
        train(store, d / model, load_config(get_model(model).config_path("tiny")), progress=False)
        out[model] = d / model
    return out


def _cli_train(store, out, model, *extra):
    return [sys.executable, "-m", "cli.pcmodels", "train", "--store", str(store), "--out", str(out), "--config",
            str(get_model(model).config_path("tiny")), "--quiet", *extra]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return Run.open(run).load_checkpoint()[0]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("model", MODELS)
def test_kill_and_resume_give_the_uninterrupted_weights(tmp_path, store, model):
    steps = "60"
    ref = subprocess.run(_cli_train(store, tmp_path / "ref", model, "--steps", steps), cwd=REPO, capture_output=True,
                         text=True)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli_train(store, run, model, "--steps", steps), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = run / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if pointer.exists() and json.loads(pointer.read_text())["step"] >= 5:
            break
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(pointer.read_text())["step"]
    assert 5 <= killed_at < 60, f"the kill landed outside training (step {killed_at})"
    again = subprocess.run(_cli_train(store, run, model, "--steps", steps), cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a, b = _weights(tmp_path / "ref"), _weights(run)
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    logged = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]
              if line.split(",")[1] in ("loss", "loss_critic")]
    assert sorted(set(logged)) == list(range(1, 61))


@pytest.mark.distributed
@pytest.mark.parametrize("model", MODELS)
def test_sampling_is_reproducible_and_follows_mask_and_multiplicity(runs, store, model):
    run = Run.open(runs[model])
    a, info = generate_clouds(run, 300, seed=4, batch_size=128, progress=False)
    b, _ = generate_clouds(run, 300, seed=4, batch_size=128, progress=False)
    c, _ = generate_clouds(run, 300, seed=5, batch_size=128, progress=False)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.points, c.points)
    assert np.isfinite(a.points).all() and info["model"] == model
    # The multiplicities are drawn by the run's field model: exactly what it draws for the seed.
    expected, _ = run.fieldmodel().sample(300, torch.Generator().manual_seed(4))
    assert np.array_equal(np.diff(a.offsets), expected)
    assert set(expected.tolist()) <= set(np.minimum(open_store(store).counts, 30).tolist())


# -- two processes ----------------------------------------------------------------------------------
DDP_SCRIPT = """
import sys
from safetensors.torch import save_file
from pcmodels.config import load_config
from pcmodels.training import Trainer
store, out, config, steps, *overrides = sys.argv[1:]
trainer = Trainer(store, out, load_config(config, steps=int(steps), overrides=tuple(overrides)), progress=False)
result = trainer.fit()
rank = trainer.dist.rank
save_file({f"{n}.{k}": p.detach().contiguous() for n, m in trainer.method.modules.items()
           for k, p in m.named_parameters()}, f"{out}.rank{rank}.safetensors")
"""


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("model", MODELS)
def test_two_ranks_equal_one_process_on_the_union_batch(tmp_path, store, model):
    from safetensors.torch import load_file

    config, steps = get_model(model).config_path("tiny"), 4
    # Adam's first steps are about lr * sign(g): a gradient that is zero in theory (attention key
    # biases) or a small difference of large terms (a critic at initialisation, scoring real and
    # generated clouds alike) steps by +-lr on the float noise of the summation order. With eps
    # 1e-3 the steps are nearly linear in the gradients, and the comparison is about DDP, not that noise.
    overrides = tuple(f"optim.{name}.eps=1e-3" for name in get_model(model).optimised)
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(store), str(out), str(config), str(steps), *overrides], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"ddp.rank{k}.safetensors")) for k in (0, 1))
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k  # the ranks share their gradients: identical weights

    # One process on the union of the two ranks' batches, batch by batch.
    cfg = load_config(config, steps=steps, overrides=overrides)
    single = Trainer(store, tmp_path / "single", cfg, progress=False)
    initial = params(single.method)
    loaders = [iter(data_loader(single.store, cfg, rank=k, world_size=2)) for k in (0, 1)]
    for _ in range(steps):
        b0, b1 = (next(it) for it in loaders)
        single.stepper.train_batch({k: torch.cat([b0[k], b1[k]]) for k in b0})
    got = params(single.method)
    moved = 0.0
    for k, v in rank0.items():
        mine = got[k]
        if k.endswith("in_proj_bias"):
            # The key bias (middle third) gets no gradient in theory: softmax is shift-invariant for
            # each query. Its Adam steps are pure float noise of the summation order; compare the rest.
            e = v.shape[0] // 3
            v, mine = torch.cat([v[:e], v[2 * e :]]), torch.cat([mine[:e], mine[2 * e :]])
        # atol 1e-5: the weights move by ~1e-3 in these steps and a rank that does not share its
        # gradients ends ~1e-3 away; float32 summation order (two half batches against one batch)
        # leaves ~2e-6 on a few DeepTreeGAN weights on some CPUs.
        torch.testing.assert_close(v, mine, rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
        moved = max(moved, float((rank0[k] - initial[k]).abs().max()))
    assert moved > 1e-4  # the weights did change: the comparison is not of two initial states

    info = Run.open(out).info
    assert info["world_size"] == 2
    logged = [line.split(",")[0] for line in (out / "log.csv").read_text().splitlines()[1:]
              if line.split(",")[1] in ("loss", "loss_critic")]
    assert logged == [str(s) for s in range(1, steps + 1)]  # one row per step: rank 0 alone writes
