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
