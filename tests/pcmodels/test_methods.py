import math

import pytest
import torch

from pcmodels.methods import FlowMatching, VPDiffusion, masked_mse
from pcmodels.networks import EPiCConfig, EPiCNetwork
from pcmodels.sampling.solvers import integrate


@pytest.mark.parametrize("solver, order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_solvers_converge_at_their_order(solver, order):
    x0 = torch.ones(1, 1, 1, dtype=torch.float64)  # float32 would hide rk4's error under rounding
    exact = math.exp(-1.0)
    errs = [abs(float(integrate(lambda x, t: -x, x0, 0.0, 1.0, steps=n, solver=solver)) - exact) for n in (8, 16)]
    assert errs[0] / errs[1] == pytest.approx(2**order, rel=0.25)
    back = integrate(lambda x, t: -x, torch.full((1, 1, 1), exact, dtype=torch.float64), 1.0, 0.0, steps=64, solver="rk4")
    assert float(back) == pytest.approx(1.0, rel=1e-6)


def test_masked_mse_ignores_padding():
    pred, target = torch.zeros(2, 3, 2), torch.zeros(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    pred[~mask] = 100.0
    assert float(masked_mse(pred, target, mask)) == 0.0
    pred[0, 0] = 1.0
    assert float(masked_mse(pred, target, mask)) == pytest.approx(2.0 / 6.0)


def _toy(n, generator):
    # Clouds of 2-d points around a cloud-dependent centre given as the condition.
    centre = torch.randn(n, 1, generator=generator)
    x = torch.randn(n, 8, 2, generator=generator) * 0.1 + torch.cat([centre, -centre], 1).unsqueeze(1)
    mask = torch.arange(8).expand(n, 8) < torch.randint(3, 9, (n, 1), generator=generator)
    return x * mask.unsqueeze(-1), mask, centre


@pytest.mark.slow
@pytest.mark.parametrize("method, solvers", [(FlowMatching(), ["midpoint"]), (VPDiffusion(), ["ddim", "ddpm", "rk4"])])
def test_methods_learn_a_conditional_toy_distribution(method, solvers):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    net = EPiCNetwork(EPiCConfig(features=2, cond=1, hidden=32, latent=4, layers=2, time_dim=16))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(250):
        x, mask, cond = _toy(128, g)
        loss = method.loss(net, x, mask, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, mask, cond = _toy(256, g)
    for solver in solvers:
        out = method.sample(net, torch.randn(x.shape, generator=g), mask, cond, solver=solver, steps=30, generator=g)
        assert (out[~mask] == 0).all()
        mean = (out * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        # Each cloud's centre follows its condition (correlation ~1), with the toy's small spread.
        corr = torch.corrcoef(torch.stack([mean[:, 0], cond[:, 0]]))[0, 1]
        assert corr > 0.95, (method.name, solver, float(corr))
        assert float((mean[:, 0] + mean[:, 1]).abs().mean()) < 0.15
        spread = (out - mean.unsqueeze(1))[mask].std()
        assert 0.05 < float(spread) < 0.25, (method.name, solver, float(spread))


def test_unknown_sampler_is_rejected():
    net = EPiCNetwork(EPiCConfig(features=2, hidden=8, latent=2, layers=1, time_dim=4))
    with pytest.raises(ValueError, match="unknown sampler 'heun'"):
        VPDiffusion().sample(net, torch.zeros(1, 2, 2), torch.ones(1, 2, dtype=torch.bool), None, solver="heun", steps=2)
