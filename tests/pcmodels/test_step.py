"""pcmodels.training.step: the EMA follows its documented update and lags the weights."""

from __future__ import annotations

import torch

from tests.pcmodels.test_conformance import params, toy_batch, toy_stepper


def test_ema_is_the_documented_average_of_the_per_step_weights():
    stepper = toy_stepper("epic-fm", 30)
    assert stepper.decay > 0.9
    start = params(stepper.method)
    expected = {k: v.clone().double() for k, v in start.items()}
    g = torch.Generator().manual_seed(2)
    for n in range(12):
        stepper.train_batch(toy_batch(16, g))
        live = params(stepper.method)
        decay = min(stepper.decay, (1.0 + n) / (10.0 + n))  # the warm-up rule of Stepper.optimise
        expected = {k: decay * expected[k] + (1 - decay) * live[k].double() for k in expected}
    ema = {f"{name}.{k}": v for name, named in stepper.ema.items() for k, v in named.items()}
    assert ema.keys() == expected.keys()
    for k in ema:
        torch.testing.assert_close(ema[k].double(), expected[k], rtol=1e-5, atol=1e-6)
    # it lags: strictly between the start and the live weights, not equal to either
    live = params(stepper.method)
    moved = [k for k in ema if not torch.equal(live[k], start[k])]
    assert moved
    for k in moved:
        assert not torch.equal(ema[k], live[k]) and not torch.equal(ema[k], start[k])
    # ema_weights() puts exactly these weights in place, and the live ones back afterwards
    with stepper.ema_weights() as method:
        inside = params(method)
        assert all(torch.equal(inside[k], ema[k]) for k in ema)
    after = params(stepper.method)
    assert all(torch.equal(after[k], live[k]) for k in live)


def _round_trip(tensors, meta):
    """Through the checkpoint files, as a resumed run reads them."""
    import json
    import tempfile
    from pathlib import Path

    from pcmodels.training.checkpoint import load_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory() as d:
        path = save_checkpoint(Path(d), meta["step"], tensors, json.loads(json.dumps(meta)))
        return load_checkpoint(path)


def test_a_restored_stepper_continues_as_if_never_stopped():
    """Weights, EMA, optimiser moments, schedule and step count all travel through a checkpoint:
    a stepper restored after 7 steps of 14 ends with the uninterrupted one's weights and EMA."""
    import pytest

    for model in ("epic-fm", "mdma"):
        g = torch.Generator().manual_seed(3)
        batches = [toy_batch(16, g) for _ in range(14)]
        whole = toy_stepper(model, 14)
        for b in batches:
            whole.train_batch(b)
        first = toy_stepper(model, 14)
        for b in batches[:7]:
            first.train_batch(b)
        tensors, meta = _round_trip(*first.state())
        assert meta["step"] == 7 and set(meta["ema_updates"].values()) >= {7}
        torch.manual_seed(123)  # another start: everything must come from the checkpoint
        second = toy_stepper(model, 14)
        second.load_state(tensors, meta)
        assert second.step == 7 and second.learning_rates() == first.learning_rates()
        for b in batches[7:]:
            second.train_batch(b)
        a, b = params(whole.method), params(second.method)
        for k in a:
            assert torch.equal(a[k], b[k]), (model, k)
        for n in whole.ema:
            for k in whole.ema[n]:
                assert torch.equal(whole.ema[n][k], second.ema[n][k]), (model, n, k)
        assert second.ema_updates == whole.ema_updates and second.step == 14
        with pytest.raises(KeyError):
            second.load_state({k: v for k, v in tensors.items() if not k.startswith("ema.")}, meta)
