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


class _Linear(torch.nn.Module):
    """A 'network' whose prediction is a known function of what it is fed (recording it)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, t, mask, cond):
        self.seen.append((mask, cond))
        return 0.5 * x + 0.1 * t.view(-1, 1, 1)


def _batch():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(6, 5, 2, generator=g, dtype=torch.float64)
    mask = torch.arange(5).expand(6, 5) < torch.tensor([[5], [3], [1], [4], [2], [5]])
    return x * mask.unsqueeze(-1), mask, torch.randn(6, 3, generator=g, dtype=torch.float64)


def _masked_mean(err, mask):
    return float((err ** 2 * mask.unsqueeze(-1)).sum() / (mask.sum() * err.shape[-1]))


def test_flow_matching_loss_is_the_masked_regression_of_the_path_velocity():
    from pcmodels.methods.flow_matching import FlowMatching

    x, mask, cond = _batch()
    net = _Linear()
    loss = FlowMatching(sigma_min=0.1).loss(net, x, mask, cond, Draws(torch.Generator().manual_seed(2)))
    assert net.seen[0][0] is mask and net.seen[0][1] is cond
    replay = Draws(torch.Generator().manual_seed(2))
    t = replay.rand(6).double().view(-1, 1, 1)
    x0 = replay.randn(6, 5, 2).double() * mask.unsqueeze(-1)  # no noise on the padding
    xt = (1 - 0.9 * t) * x0 + t * x
    assert float(loss) == pytest.approx(_masked_mean(0.5 * xt + 0.1 * t - (x - 0.9 * x0), mask), rel=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_diffusion_loss_is_the_masked_regression_of_its_target(prediction):
    x, mask, cond = _batch()
    net, vp = _Linear(), VPDiffusion(prediction=prediction, t_min=0.05)
    loss = vp.loss(net, x, mask, cond, Draws(torch.Generator().manual_seed(3)))
    assert net.seen[0][0] is mask and net.seen[0][1] is cond
    replay = Draws(torch.Generator().manual_seed(3))
    t = 0.05 + 0.95 * replay.rand(6).double()
    eps = replay.randn(6, 5, 2).double() * mask.unsqueeze(-1)
    a, s = (v.view(-1, 1, 1) for v in vp.alpha_sigma(t))
    target = eps if prediction == "eps" else a * eps - s * x
    pred = 0.5 * (a * x + s * eps) + 0.1 * t.view(-1, 1, 1)
    assert float(loss) == pytest.approx(_masked_mean(pred - target, mask), rel=1e-6)


def test_method_settings_are_checked():
    from pcmodels.methods.flow_matching import FlowMatching

    FlowMatching(sigma_min=0.0)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"^sigma_min: must be in \[0, 1\), got {bad}$"):
            FlowMatching(sigma_min=bad)
    VPDiffusion(t_min=0.999, beta_min=1e-3, beta_max=2e-3)
    for kw in ({"t_min": 0.0}, {"t_min": 1.0}, {"beta_min": 0.0}, {"beta_min": 5.0, "beta_max": 5.0}):
        with pytest.raises(ValueError, match=r"^beta_min: VP diffusion needs 0 < t_min < 1 and 0 < beta_min < beta_max$"):
            VPDiffusion(**kw)


_RANKS = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {repo!r})
from pcmodels.methods import Draws, VPDiffusion
from pcmodels.methods.flow_matching import FlowMatching
from tests.pcmodels.test_methods import _Linear, _batch
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://{rendezvous}", rank=rank, world_size=2)
x, mask, cond = _batch()
part = slice(3 * rank, 3 * rank + 3)
out = []
for method in (FlowMatching(sigma_min=0.1), VPDiffusion(prediction="v")):
    draws = Draws(torch.Generator().manual_seed(9), rank=rank, world_size=2)
    out.append(float(method.loss(_Linear(), x[part], mask[part], cond[part], draws)))
print(*out)
dist.destroy_process_group()
"""


def test_the_ranks_losses_average_to_the_loss_of_the_union_batch(tmp_path):
    """Each rank divides by the mean over ranks of the real points (``Draws.mean_count``): the ranks'
    mean loss (what DDP's gradient average sees) is the loss of the union batch, whose halves hold
    different numbers of real points here (9 and 11)."""
    import subprocess
    import sys

    from pcmodels.methods.flow_matching import FlowMatching
    from tests.conftest import REPO

    script = tmp_path / "ranks.py"
    script.write_text(_RANKS.format(repo=str(REPO), rendezvous=str(tmp_path / "rdv")))
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], stdout=subprocess.PIPE, text=True, cwd=REPO)
             for r in (0, 1)]
    got = [[float(v) for v in p.communicate(timeout=120)[0].split()] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    x, mask, cond = _batch()
    for k, method in enumerate((FlowMatching(sigma_min=0.1), VPDiffusion(prediction="v"))):
        union = float(method.loss(_Linear(), x, mask, cond, Draws(torch.Generator().manual_seed(9))))
        assert (got[0][k] + got[1][k]) / 2 == pytest.approx(union, rel=1e-9)
        assert got[0][k] != pytest.approx(got[1][k], rel=1e-3)


def test_the_vp_schedule_is_the_linear_noise_rate_and_preserves_variance():
    vp = VPDiffusion(beta_min=0.1, beta_max=20.0)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64, requires_grad=True)
    assert float(vp.beta(t[0]).detach()) == pytest.approx(0.1) and float(vp.beta(t[-1]).detach()) == pytest.approx(20.0)
    torch.testing.assert_close(vp.beta(t.detach()), 0.1 + 19.9 * t.detach())
    # alpha(t)^2 = exp(-int_0^t beta): the noise rate is -2 d log(alpha) / dt
    (grad,) = torch.autograd.grad(vp.log_alpha(t).sum(), t)
    torch.testing.assert_close(-2 * grad, vp.beta(t).detach())
    a, s = vp.alpha_sigma(t.detach())
    torch.testing.assert_close(a * a + s * s, torch.ones(11, dtype=torch.float64))
    assert float(vp.log_alpha(torch.tensor(0.0))) == 0.0
