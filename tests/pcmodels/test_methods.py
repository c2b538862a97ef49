import math

import pytest
import torch

from pcmodels.methods import Draws, VPDiffusion, masked_mse
from pcmodels.networks import EPiCConfig, EPiCNetwork
from pcmodels.solvers import integrate


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


def test_masked_mse_with_a_shared_count_is_the_union_mean():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 5, 2, generator=g), torch.randn(4, 5, 2, generator=g)
    mask = torch.rand(4, 5, generator=g) > 0.4
    union = masked_mse(pred, target, mask)
    # Two "ranks" holding two clouds each, dividing by the mean of their counts: the mean of their
    # losses is the loss of the union (what DDP's gradient average needs).
    count = mask.sum().to(torch.float64) / 2
    halves = [masked_mse(pred[k : k + 2], target[k : k + 2], mask[k : k + 2], count) for k in (0, 2)]
    assert float((halves[0] + halves[1]) / 2) == pytest.approx(float(union), rel=1e-6)


def test_draws_give_each_rank_its_rows_of_the_global_draw():
    whole = Draws(torch.Generator().manual_seed(3)).randn(6, 2)
    parts = [Draws(torch.Generator().manual_seed(3), rank=r, world_size=3).randn(2, 2) for r in range(3)]
    assert torch.equal(torch.cat(parts), whole)


def test_unknown_sampler_is_rejected():
    net = EPiCNetwork(EPiCConfig(features=2, hidden=8, latent=2, layers=1, time_dim=4))
    with pytest.raises(ValueError, match="unknown sampler 'heun'"):
        VPDiffusion().sample(net, torch.zeros(1, 2, 2), torch.ones(1, 2, dtype=torch.bool), None, solver="heun", steps=2)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_diffusion_recovers_noise_and_clean_cloud_from_its_target(prediction):
    vp = VPDiffusion(prediction=prediction)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    a, s = (v.view(-1, 1, 1) for v in vp.alpha_sigma(torch.tensor([0.01, 0.5, 1.0])))
    xt = a * x0 + s * eps
    target = eps if prediction == "eps" else a * eps - s * x0  # what the loss regresses
    got_eps, got_x0 = vp.eps_x0(target, xt, a, s)
    torch.testing.assert_close(got_eps, eps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_x0, x0, rtol=1e-3, atol=2e-3)
    with pytest.raises(ValueError, match="prediction: must be 'eps' or 'v'"):
        VPDiffusion(prediction="x0")


class _Spy(torch.nn.Module):
    """A 'network' that records what the method feeds it and predicts zero."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, mask, cond):
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return torch.zeros_like(x)


def _times_cover(t: torch.Tensor, low: float, high: float) -> None:
    # every time of [low, high) is drawn, uniformly: the empirical CDF stays within 3% of the line
    t, _ = torch.sort(t.double())
    assert float(t.min()) >= low and float(t.max()) < high
    ideal = low + (high - low) * (torch.arange(len(t), dtype=torch.float64) + 0.5) / len(t)
    assert float((t - ideal).abs().max()) < 0.03 * (high - low)


def test_flow_matching_trains_on_every_time_of_the_straight_path():
    from pcmodels.methods.flow_matching import FlowMatching

    fm, spy = FlowMatching(sigma_min=1e-4), _Spy()
    x = torch.randn(4000, 3, 2)
    mask = torch.ones(4000, 3, dtype=torch.bool)
    fm.loss(spy, x, mask, None, Draws(torch.Generator().manual_seed(4)))
    xt, t = spy.calls[0]
    _times_cover(t, 0.0, 1.0)
    replay = Draws(torch.Generator().manual_seed(4))  # the same draws in the same order: t, then x_0
    t2, x0 = replay.rand(4000), replay.randn(4000, 3, 2)
    assert torch.equal(t, t2)
    tt = t.view(-1, 1, 1)
    torch.testing.assert_close(xt, (1 - (1 - 1e-4) * tt) * x0 + tt * x)


def test_diffusion_trains_on_every_time_of_the_schedule():
    from pcmodels.methods.diffusion import VPDiffusion

    vp, spy = VPDiffusion(), _Spy()
    x = torch.randn(4000, 3, 2)
    vp.loss(spy, x, torch.ones(4000, 3, dtype=torch.bool), None, Draws(torch.Generator().manual_seed(6)))
    xt, t = spy.calls[0]
    _times_cover(t, vp.t_min, 1.0)
    replay = Draws(torch.Generator().manual_seed(6))
    u, eps = replay.rand(4000), replay.randn(4000, 3, 2)
    a, s = (v.view(-1, 1, 1) for v in vp.alpha_sigma(vp.t_min + (1 - vp.t_min) * u))
    torch.testing.assert_close(xt, a * x + s * eps)
    assert float(a.min()) < 0.01 < 0.99 < float(a.max())  # from nearly pure noise to nearly clean
