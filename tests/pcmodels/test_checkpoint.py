"""pcmodels.training.checkpoint: safetensors + JSON, atomic, durable, and every damage named."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pcmodels.errors import RunError
from pcmodels.training.checkpoint import (flatten_optimizer, latest_checkpoint, load_checkpoint, remove_temporaries,
                                          save_checkpoint, unflatten_optimizer)


def test_checkpoint_files_take_the_runs_mode_are_synced_and_stale_temporaries_go(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    old = os.umask(0o027)  # a group-shared run: files rw-r-----
    try:
        path = save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {"step": 3})
    finally:
        os.umask(old)
    assert oct((path / "tensors.safetensors").stat().st_mode & 0o777) == oct(0o640)
    assert oct((path / "meta.json").stat().st_mode & 0o777) == oct(0o640)
    # the files, then their directory, then the rename, then the pointer
    assert [s for s in synced if s.endswith(("tensors.safetensors", "meta.json"))]
    assert any(s == str(tmp_path / "checkpoints") for s in synced)
    assert synced.index(str(tmp_path / "checkpoints")) < len(synced) - 1  # last.json is written after
    assert latest_checkpoint(tmp_path) == path
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


_KILLED_BEFORE_RENAME = """
import os, sys, time
from pathlib import Path
import torch
from pcmodels.training.checkpoint import save_checkpoint
real = os.rename
def stall(a, b):
    if Path(b).name.startswith("step-"):
        print("written", flush=True)
        time.sleep(600)
    real(a, b)
os.rename = stall
save_checkpoint(Path(sys.argv[1]), 9, {"w": torch.ones(2)}, {"step": 9})
"""


def test_temporaries_of_killed_writers_go_and_those_of_live_ones_stay(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    path = save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {"step": 3})
    writers = [subprocess.Popen([sys.executable, "-c", _KILLED_BEFORE_RENAME, str(tmp_path)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for w in writers:
            assert w.stdout.readline().strip() == "written"
        killed, live = writers
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        temps = {w.pid: [p for p in (tmp_path / "checkpoints").glob(".step-0000009.tmp-*") if f"-{w.pid}@" in p.name]
                 for w in writers}
        assert all(len(t) == 1 for t in temps.values()), temps
        # Another host's temporary: fresh ones stay (its writer may be running), old ones go.
        fresh = tmp_path / "checkpoints" / ".step-0000011.tmp-77@elsewhere-0123456789ab"
        old = tmp_path / "checkpoints" / ".step-0000010.tmp-77@elsewhere-ba9876543210"
        for t in (fresh, old):
            t.mkdir()
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        remove_temporaries(tmp_path)
        assert not temps[killed.pid][0].exists() and not old.exists()
        assert temps[live.pid][0].exists() and fresh.exists() and path.exists()
    finally:
        for w in writers:
            w.kill()
            w.wait(30)



def test_the_newest_checkpoints_are_kept_and_last_json_names_the_newest(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, {"step": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.json", "step-0000015", "step-0000020"]
    assert json.loads((tmp_path / "checkpoints" / "last.json").read_text()) == {"step": 20, "path": "step-0000020"}
    tensors, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert meta == {"step": 20} and torch.equal(tensors["w"], torch.full((2,), 20.0))
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_damaged_checkpoints_are_named(tmp_path):
    path = save_checkpoint(tmp_path, 3, {"w": torch.ones(4)}, {"step": 3})
    pointer = tmp_path / "checkpoints" / "last.json"
    pointer.write_text("{")
    with pytest.raises(RunError, match=r"last\.json: unreadable checkpoint pointer"):
        latest_checkpoint(tmp_path)
    pointer.write_text(json.dumps({"step": 9, "path": "step-0000009"}))
    with pytest.raises(RunError, match=r"last\.json: points at step-0000009, which is missing"):
        latest_checkpoint(tmp_path)
    for meta, problem in (("{", "Expecting property name"), ('{"step": -1}', "no step count"), ("[3]", "no step count"),
                          ('{"step": "3"}', "no step count")):
        (path / "meta.json").write_text(meta)
        with pytest.raises(RunError, match=rf"meta\.json: damaged checkpoint \({problem}"):
            load_checkpoint(path)
    (path / "meta.json").write_text('{"step": 3}')
    data = (path / "tensors.safetensors").read_bytes()
    (path / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match=r"step-0000003/tensors\.safetensors: damaged checkpoint"):
        load_checkpoint(path)
    (path / "tensors.safetensors").unlink()
    with pytest.raises(RunError, match=r"tensors\.safetensors: damaged checkpoint"):
        load_checkpoint(path)


def test_an_optimizer_state_round_trips_through_flat_tensors():
    w = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.Adam([w], lr=0.1, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    tensors, meta = flatten_optimizer(opt.state_dict(), prefix="optim.net.")
    assert set(tensors) == {"optim.net.0.exp_avg", "optim.net.0.exp_avg_sq", "optim.net.0.step"}
    meta = json.loads(json.dumps(meta))  # it is JSON
    back = unflatten_optimizer({**tensors, "optim.other.0.x": torch.ones(1)}, meta, prefix="optim.net.")
    fresh = torch.optim.Adam([torch.nn.Parameter(w.detach().clone())], lr=1.0)
    fresh.load_state_dict(back)
    a, b = opt.state_dict(), fresh.state_dict()
    assert json.loads(json.dumps(a["param_groups"])) == json.loads(json.dumps(b["param_groups"]))
    for k in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(a["state"][0][k], b["state"][0][k])


def test_optimizer_scalars_and_dotted_keys_round_trip():
    state = {"state": {0: {"moment.first": torch.ones(2), "count": 3, "flag": True}, 3: {"v": torch.zeros(1)}},
             "param_groups": [{"lr": 0.1, "params": [0, 3]}]}
    tensors, meta = flatten_optimizer(state, prefix="optim.g.")
    assert set(tensors) == {"optim.g.0.moment.first", "optim.g.3.v"}
    assert meta["scalars"] == {"0.count": 3, "0.flag": True}
    back = unflatten_optimizer(tensors, json.loads(json.dumps(meta)), prefix="optim.g.")
    assert set(back["state"]) == {0, 3}
    assert back["state"][0]["count"] == 3 and back["state"][0]["flag"] is True
    assert torch.equal(back["state"][0]["moment.first"], torch.ones(2)) and torch.equal(back["state"][3]["v"], torch.zeros(1))
    assert back["param_groups"] == [{"lr": 0.1, "params": [0, 3]}]


def test_a_first_checkpoint_makes_its_folders_and_a_failed_one_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    run = tmp_path / "new" / "run"
    path = save_checkpoint(run, 0, {"w": torch.ones(1)}, {"step": 0})
    assert load_checkpoint(path)[1] == {"step": 0}  # step 0 is a step
    (run / "checkpoints" / "step-notes").write_text("not a checkpoint")  # a stray file is never pruned
    for step in (1, 2):
        save_checkpoint(run, step, {"w": torch.ones(1)}, {"step": step}, keep=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.json", "step-0000002", "step-notes"]

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(run, 3, {"w": torch.ones(1)}, {"step": 3})
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.json", "step-0000002", "step-notes"]
    assert latest_checkpoint(run).name == "step-0000002"


def test_the_damage_is_quoted_in_the_message(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"w": torch.ones(1)}, {"step": 1})
    (path / "meta.json").write_text("{")
    with pytest.raises(RunError, match=r"meta\.json: damaged checkpoint \(Expecting property name"):
        load_checkpoint(path)
    (path / "meta.json").write_text('{"step": 1}')
    (path / "tensors.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}")
    with pytest.raises(RunError, match=r"tensors\.safetensors: damaged checkpoint \(.+\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["../../elsewhere", "/tmp", 7, None, ["step-0000002"]])
def test_the_checkpoint_pointer_names_only_a_checkpoint_of_this_run(tmp_path, name):
    """Found by the fuzz target: a pointer of another type raised TypeError, one with a path led
    out of the run folder."""
    save_checkpoint(tmp_path, 2, {"w": torch.ones(2)}, {"step": 2})
    (tmp_path / "checkpoints" / "last.json").write_text(json.dumps({"step": 2, "path": name}))
    with pytest.raises(RunError, match=r"last\.json: unreadable checkpoint pointer \(path .* is not a step-NNNNNNN name\)"):
        latest_checkpoint(tmp_path)
