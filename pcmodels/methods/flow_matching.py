"""Conditional flow matching on the straight path (EPiC-FM; Lipman et al. 2023).

``x_t = (1 - (1 - sigma_min) t) x_0 + t x_1`` from Gaussian noise ``x_0`` (t = 0) to data ``x_1``
(t = 1); the network regresses the path's velocity ``x_1 - (1 - sigma_min) x_0`` with one ``t``
per cloud and a masked MSE. Sampling integrates the learned velocity from noise to data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..solvers import ODE_SOLVERS, integrate
from .base import Draws, masked_mse

__all__ = ["FlowMatching"]


@dataclass(frozen=True)
class FlowMatching:
    """Flow matching with the straight conditional path.

    Attributes:
        sigma_min: width of the path's end at the data (EPiC-FM: 1e-4).
    """

    sigma_min: float = 1e-4
    samplers = ODE_SOLVERS

    def __post_init__(self) -> None:
        if not 0 <= self.sigma_min < 1:
            raise ValueError(f"sigma_min: must be in [0, 1), got {self.sigma_min}")

    def loss(self, net, x, mask, cond, draws: Draws):
        """Masked MSE of the velocity at one random time per cloud (draws: ``t`` then ``x_0``)."""
        b = x.shape[0]
        # the casts below only place the draws on x's device and dtype; type promotion gives the
        # same values on the CPU, so their mutants are equivalent here
        m = mask.unsqueeze(-1).to(x.dtype)  # pragma: no mutate
        t = draws.rand(b).to(x.device)  # pragma: no mutate
        x0 = draws.randn(*x.shape).to(x.device, x.dtype)  # pragma: no mutate
        x0 = x0 * m
        tt = t.view(-1, 1, 1).to(x.dtype)  # pragma: no mutate
        xt = (1 - (1 - self.sigma_min) * tt) * x0 + tt * x
        target = x - (1 - self.sigma_min) * x0
        return masked_mse(net(xt, t, mask, cond), target, mask, draws.mean_count(mask.sum()))

    @torch.no_grad()
    def sample(self, net, noise, mask, cond, *, solver="midpoint", steps=100, generator=None):
        m = mask.unsqueeze(-1).to(noise.dtype)
        return integrate(lambda x, t: net(x, t, mask, cond) * m, noise * m, 0.0, 1.0, steps=steps, solver=solver)
