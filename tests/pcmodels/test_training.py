"""The trainer: config and run checks, one line per bad input, divergence kept at the last good checkpoint."""

from __future__ import annotations

import json
import time

import pytest

from pcdata.ingest import IngestOptions, ingest_jetnet
from pcmodels.config import load_config
from pcmodels.errors import ConfigError, RunError
from pcmodels.registry import get_model
from pcmodels.run import RUN_VERSION, Run
from pcmodels.training import train
from tests.conftest import run_cli

pytestmark = [pytest.mark.distributed]


@pytest.fixture(scope="module")
def store(tmp_path_factory, jetnet_files, scheduler):
    return ingest_jetnet(jetnet_files[:1], tmp_path_factory.mktemp("st") / "s", cluster=scheduler, options=IngestOptions(progress=False)).path


def tiny(model="epic-fm", **kw):
    return load_config(get_model(model).config_path("tiny"), **kw)


def test_run_folder_is_versioned_and_complete(tmp_path, store):
    r = train(store, tmp_path / "run", tiny(steps=5), progress=False)
    run = Run.open(r.run)
    info = run.info
    assert info["format"] == "pcmodels-run" and info["version"] == RUN_VERSION and info["model"] == "epic-fm"
    assert info["world_size"] == 1 and info["packages"]["torch"] and info["machine"]["cpus"] >= 1
    assert run.config == tiny(steps=5)
    assert sorted(p.name for p in r.run.iterdir()) == ["checkpoints", "config.yaml", "fieldmodel.safetensors",
                                                       "log.csv", "run.json", "tb"]
    # A run of another format version is refused with its path.
    info["version"] = RUN_VERSION + 1
    (r.run / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match=f"run format version {RUN_VERSION + 1}"):
        Run.open(r.run)
    (r.run / "run.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(RunError, match="not a pcmodels-run run"):
        Run.open(r.run)


def test_bad_settings_are_clear(tmp_path, store):
    with pytest.raises(ConfigError, match="no cloud field 'charge' to condition on"):
        train(store, tmp_path / "r", tiny(steps=1, overrides=("data.cond_fields=[charge]",)), progress=False)
    assert not (tmp_path / "r").exists()
    train(store, tmp_path / "r2", tiny(steps=2), progress=False)
    with pytest.raises(RunError, match=r"another configuration \(differs in optim.net.lr\)"):
        train(store, tmp_path / "r2", tiny(steps=2, overrides=("optim.net.lr=0.5",)), progress=False)


def test_yaml_numbers_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: mdma\noptim:\n  critic: {lr: 1e-3}\ntrain: {steps: 3}\n")  # YAML 1.1: '1e-3' is a string
    cfg = load_config(path, overrides=("optim.generator.lr=2e-4", "network.gen_layers=3"))
    assert cfg.optim["critic"].lr == 1e-3 and cfg.optim["generator"].lr == 2e-4 and cfg.network.gen_layers == 3
    assert cfg.optim["generator"].betas == (0.0, 0.999) and cfg.optim["generator"].eps == 1e-14  # the paper's
    for override, message in [("optim.generator.lr=fast", "optim.generator.lr: expected a number, got 'fast'"),
                              ("optim.gen.lr=1", "optim.gen: mdma has no optimiser of that name"),
                              ("network.gen_heads=5", "network.gen_heads: 5 heads must divide hidden = 48"),
                              ("train.ema=1", "train.ema: must be in [0, 1), got 1.0"),
                              ("data.pad=0", "data.pad: must be 'batch' or >= 1, got 0"),
                              ("method.loss=vanilla", "method.loss: expected one of 'lsgan', 'hinge', 'wgan'"),
                              ("sampling.sampler=ddim", "sampling.sampler: 'ddim' is not a sampler of mdma"),
                              ("network.hiden=3", "network.hiden: unknown setting")]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_config(path, overrides=(override,))


@pytest.mark.parametrize("args, message", [
    (["--set", "optim.net.lr=-1"], "optim.net.lr: must be > 0, got -1.0"),
    (["--set", "nonsense"], "--set: 'nonsense': expected key=value"),
    (["--set", "train.steps=two"], "train.steps: expected an integer, got 'two'"),
    (["--model", "mdma"], "--model: mdma: the config file"),
])
def test_cli_bad_config_is_one_line_exit_2_and_no_run_folder(tmp_path, store, args, message):
    out = tmp_path / "run"
    r = run_cli("pcmodels", "train", "--store", str(store), "--out", str(out), "--config",
                str(get_model("epic-fm").config_path("tiny")), *args)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_a_diverging_gan_stops_clearly_and_keeps_its_last_good_checkpoint(tmp_path, store):
    # A critic limit of 1 (LSGAN's real target) is crossed after some healthy steps: the run stops there.
    out = tmp_path / "run"
    r = run_cli("pcmodels", "train", "--store", str(store), "--out", str(out), "--config",
                str(get_model("mdma").config_path("tiny")), "--steps", "60", "--quiet",
                "--set", "method.critic_limit=1.0", "--set", "train.checkpoint_every=1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    line = r.stderr.strip()
    assert "training stopped at step" in line and "the critic exploded" in line
    stopped = int(line.split("training stopped at step ")[1].split(":")[0])
    assert 1 < stopped < 60
    assert line.endswith(f"the last good checkpoint (step-{stopped - 1:07d}) is kept")
    pointer = json.loads((out / "checkpoints" / "last.json").read_text())
    assert pointer["step"] == stopped - 1  # nothing of the diverged step was saved
    tensors, meta = Run.open(out).load_checkpoint()
    assert meta["step"] == stopped - 1 and all(bool(t.isfinite().all()) for t in tensors.values() if t.is_floating_point())


def test_a_wall_time_budget_stops_checkpointed_and_a_rerun_continues(tmp_path, store):
    cfg = tiny(steps=100_000, overrides=("train.max_minutes=0.05", "train.checkpoint_every=100000"))
    t0 = time.perf_counter()
    first = train(store, tmp_path / "run", cfg, progress=False)
    assert time.perf_counter() - t0 < 60
    assert 0 < first.steps < 100_000
    assert Run.open(first.run).load_checkpoint()[1]["step"] == first.steps  # saved where it stopped
    second = train(store, tmp_path / "run", cfg, progress=False)
    assert second.steps > first.steps


def test_a_log_left_empty_by_a_kill_gets_its_header(tmp_path):
    from pcmodels.training.logs import RunLogger

    (tmp_path / "log.csv").write_text("")
    logger = RunLogger(tmp_path)
    logger.log(1, {"loss": 0.5})
    logger.close()
    assert (tmp_path / "log.csv").read_text().splitlines() == ["step,name,value", "1,loss,0.5"]


def test_validation_hook_every_n_steps_stops_at_a_checkpoint_and_resumes_to_the_same_weights(tmp_path, store):
    import torch

    cfg = tiny(steps=12, overrides=("train.checkpoint_every=100",))
    seen = []

    class Stop(Exception):
        pass

    def hook(step, validation, final):
        seen.append((step, validation["val_loss"], final))
        if step == 8:
            raise Stop  # e.g. a pruner: training stops, checkpointed at this step

    with pytest.raises(Stop):
        train(store, tmp_path / "run", cfg, progress=False, validate_every=4, on_validation=hook)
    assert [s for s, _, _ in seen] == [4, 8] and not any(f for _, _, f in seen)  # every 4 steps (the tiny store's epoch is longer)
    assert Run.open(tmp_path / "run").load_checkpoint()[1]["step"] == 8
    resumed = train(store, tmp_path / "run", cfg, progress=False, validate_every=4, on_validation=hook)
    assert resumed.steps == 12 and [s for s, _, _ in seen] == [4, 8, 12]  # validated at the last step too
    assert [f for _, _, f in seen] == [False, False, True]  # and told it is the last
    straight = train(store, tmp_path / "straight", cfg, progress=False)  # no hook: same weights
    a, _ = Run.open(resumed.run).load_checkpoint()
    b, _ = Run.open(straight.run).load_checkpoint()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("module."))
    with pytest.raises(ConfigError, match="validate_every must be >= 1, got 0"):
        train(store, tmp_path / "r0", cfg, progress=False, validate_every=0)
