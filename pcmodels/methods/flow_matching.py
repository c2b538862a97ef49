"""Conditional flow matching on the straight path (EPiC-FM; Lipman et al. 2023).

``x_t = (1 - (1 - sigma_min) t) x_0 + t x_1`` from Gaussian noise ``x_0`` (t = 0) to data ``x_1``
(t = 1); the network regresses the path's velocity ``x_1 - (1 - sigma_min) x_0`` with one ``t``
per cloud and a masked MSE. Sampling integrates the learned velocity from noise to data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sampling.solvers import ODE_SOLVERS, integrate
from .base import masked_mse

__all__ = ["FlowMatching"]


@dataclass(frozen=True)
class FlowMatching:
    """Flow matching with the straight conditional path.

    Attributes:
        sigma_min: width of the path's end at the data (EPiC-FM: 1e-4).
    """

    sigma_min: float = 1e-4
    name = "epic-fm"
    samplers = ODE_SOLVERS

    def loss(self, net, x, mask, cond, generator=None):
        b = x.shape[0]
        m = mask.unsqueeze(-1).to(x.dtype)
        t = torch.rand(b, device=x.device, generator=generator)
        x0 = torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype) * m
        tt = t.view(-1, 1, 1).to(x.dtype)
        xt = (1 - (1 - self.sigma_min) * tt) * x0 + tt * x
        target = x - (1 - self.sigma_min) * x0
        return masked_mse(net(xt, t, mask, cond), target, mask)

    @torch.no_grad()
    def sample(self, net, noise, mask, cond, *, solver="midpoint", steps=100, generator=None):
        m = mask.unsqueeze(-1).to(noise.dtype)
        return integrate(lambda x, t: net(x, t, mask, cond) * m, noise * m, 0.0, 1.0, steps=steps, solver=solver)
