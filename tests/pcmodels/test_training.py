"""Training from a store: resume after a kill gives the uninterrupted weights; torchrun with 2 ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pcdata.ingest import ingest_jetnet
from pcmodels.errors import ConfigError, RunError
from pcmodels.training import load_config, train
from pcmodels.training.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

TINY = {"hidden": "16", "latent": "4", "layers": "1", "time_dim": "8"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, jetnet_files, scheduler):
    return ingest_jetnet(jetnet_files[:1], tmp_path_factory.mktemp("st") / "s", scheduler=scheduler, progress=False).path


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items())
                    + "\npad: 30\nbatch_size: 32\nwarmup_steps: 5\ncheckpoint_every: 3\nlog_every: 1\n")
    return path


def _cmd(store, out, config, *extra):
    return [sys.executable, "-m", "cli.pcmodels", "train", "--store", str(store), "--out", str(out),
            "--config", str(config), "--quiet", *extra]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run))[0]


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, store, tiny_config):
    steps = "45"
    ref = subprocess.run(_cmd(store, tmp_path / "ref", tiny_config, "--steps", steps), cwd=REPO, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(store, run, tiny_config, "--steps", steps), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = run / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if pointer.exists() and json.loads(pointer.read_text())["step"] >= 6:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(pointer.read_text())["step"]
    assert 6 <= killed_at < 45, f"the kill landed outside training (step {killed_at})"
    again = subprocess.run(_cmd(store, run, tiny_config, "--steps", steps), cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a, b = _weights(tmp_path / "ref"), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The CSV log carries the loss of every step once per run segment, the resumed part included.
    steps_logged = {int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:] if ",loss," in line}
    assert steps_logged == set(range(1, 46))


def test_two_ranks_under_torchrun_with_gloo(tmp_path, store, tiny_config):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli.pcmodels",
           "train", "--store", str(store), "--out", str(out), "--config", str(tiny_config), "--epochs", "1", "--quiet"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    single = tmp_path / "single"
    one = train(store, single, load_config(tiny_config, epochs=1), progress=False)
    two_steps = json.loads((out / "checkpoints" / "last.json").read_text())["step"]
    # Each rank streams half of the epoch: half as many steps as one process.
    assert two_steps == one.steps // 2
    assert "parameters" in r.stdout


def test_bad_settings_are_clear(tmp_path, store, tiny_config):
    with pytest.raises(ConfigError, match="no cloud field 'charge' to condition on"):
        train(store, tmp_path / "r", load_config(tiny_config, steps=1, cond_fields=("charge",)), progress=False)
    train(store, tmp_path / "r2", load_config(tiny_config, steps=2), progress=False)
    with pytest.raises(RunError, match="was started with another configuration .differs in lr"):
        train(store, tmp_path / "r2", load_config(tiny_config, steps=2, lr=0.5), progress=False)
    with pytest.raises(ConfigError, match="unknown setting 'hiden'"):
        load_config(tiny_config, hiden=3)
