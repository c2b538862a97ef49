"""Fuzz the checkpoint readers: ``last.json``, ``meta.json`` (documents and bytes) and the
safetensors file (bytes), as :func:`latest_checkpoint` and :func:`load_checkpoint` read them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st

from pcmodels.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tests.fuzz._fuzz import dump, mutated, mutated_bytes, project_error_or, run_for, write_text

pytestmark = pytest.mark.fuzz

META = {"step": 2, "optimizers": {"net": {"param_groups": [{"lr": 1e-3, "params": [0, 1]}], "scalars": {"0.step": 2}}},
        "loader": {"epoch": 0, "position": 16}}


def _target(data) -> None:
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        final = save_checkpoint(run, 2, {"module.net.w": torch.ones(3, 2), "optim.0.exp_avg": torch.zeros(3)}, META)
        which = data.draw(st.sampled_from(["meta", "meta-bytes", "last", "last-bytes", "tensors-bytes"]), label="what")
        last = run / "checkpoints" / "last.json"
        if which == "meta":
            write_text(final / "meta.json", dump(data.draw(mutated(META), label="meta")))
        elif which == "last":
            write_text(last, dump(data.draw(mutated(json.loads(last.read_text())), label="last")))
        else:
            f = {"meta-bytes": final / "meta.json", "last-bytes": last, "tensors-bytes": final / "tensors.safetensors"}[which]
            f.write_bytes(data.draw(mutated_bytes(f.read_bytes()), label="bytes"))
        path = project_error_or(lambda: latest_checkpoint(run), str(last))
        if path is None:
            return
        assert path.parent == run / "checkpoints"  # the pointer never leads out of the run
        loaded = project_error_or(lambda: load_checkpoint(path), str(path))
        if loaded is not None:
            tensors, meta = loaded
            assert isinstance(meta["step"], int) and meta["step"] >= 0
            assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_checkpoint_readers_raise_only_run_errors():
    run_for(_target, st.data())
