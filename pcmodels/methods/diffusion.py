"""Score-based diffusion with the variance-preserving schedule (EPiC-JeDi; Song et al. 2021).

Forward process ``x_t = alpha(t) x_0 + sigma(t) eps`` with a linear ``beta(t)`` from
``beta_min`` to ``beta_max``; the network predicts ``eps`` (masked MSE). Samplers: ancestral DDPM
steps, deterministic DDIM steps, and the probability-flow ODE with any fixed-step ODE solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..solvers import ODE_SOLVERS, integrate
from .base import Draws, masked_mse

__all__ = ["VPDiffusion"]


@dataclass(frozen=True)
class VPDiffusion:
    """Variance-preserving diffusion.

    Attributes:
        beta_min, beta_max: the linear noise-rate schedule (VP-SDE defaults 0.1 and 20).
        t_min: smallest time used in training and where sampling stops (avoids sigma = 0).
        prediction: what the network predicts: the noise ``eps`` (PC-JeDi) or the velocity
            ``v = alpha eps - sigma x_0`` (Salimans & Ho 2022), whose error is not amplified by
            ``1 / alpha`` when the clean cloud is estimated at high noise.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    prediction: str = "eps"
    samplers = ("ddpm", "ddim", *ODE_SOLVERS)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        la = self.log_alpha(t)
        return torch.exp(la), torch.sqrt(-torch.expm1(2 * la))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def loss(self, net, x, mask, cond, draws: Draws):
        """Masked MSE of the noise estimate at one random time per cloud (draws: ``t`` then ``eps``)."""
        b = x.shape[0]
        # the casts below only place the draws on x's device and dtype; type promotion gives the
        # same values on the CPU, so their mutants are equivalent here
        m = mask.unsqueeze(-1).to(x.dtype)  # pragma: no mutate
        u = draws.rand(b).to(x.device)  # pragma: no mutate
        t = self.t_min + (1 - self.t_min) * u
        eps = draws.randn(*x.shape).to(x.device, x.dtype)  # pragma: no mutate
        eps = eps * m
        a, s = (v.view(-1, 1, 1).to(x.dtype) for v in self.alpha_sigma(t))  # pragma: no mutate
        target = eps if self.prediction == "eps" else a * eps - s * x
        return masked_mse(net(a * x + s * eps, t, mask, cond), target, mask, draws.mean_count(mask.sum()))

    def eps_x0(self, out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor):
        """The noise and clean-cloud estimates from the network's output at ``x_t``."""
        if self.prediction == "eps":
            return out, (x - s * out) / a
        return s * x + a * out, a * x - s * out

    @torch.no_grad()
    def sample(self, net, noise, mask, cond, *, solver="ddim", steps=100, generator=None):
        m = mask.unsqueeze(-1).to(noise.dtype)
        x = noise * m
        if solver in ODE_SOLVERS:
            def drift(x, t):
                a, s = (v.view(-1, 1, 1) for v in self.alpha_sigma(t))
                eps, _ = self.eps_x0(net(x, t, mask, cond), x, a, s)
                return -0.5 * self.beta(t).view(-1, 1, 1) * (x - eps / s) * m

            return integrate(drift, x, 1.0, self.t_min, steps=steps, solver=solver)
        if solver not in ("ddpm", "ddim"):
            raise ValueError(f"unknown sampler {solver!r} for VP diffusion (choose from {', '.join(self.samplers)})")
        times = torch.linspace(1.0, self.t_min, steps + 1, device=x.device)
        b = x.shape[0]
        for k in range(steps):
            t, s_time = times[k].expand(b), times[k + 1].expand(b)
            a_t, s_t = (v.view(-1, 1, 1) for v in self.alpha_sigma(t))
            a_s, s_s = (v.view(-1, 1, 1) for v in self.alpha_sigma(s_time))
            eps, x0 = self.eps_x0(net(x, t, mask, cond), x, a_t, s_t)
            if solver == "ddim" or k == steps - 1:
                x = a_s * x0 + s_s * eps
            else:
                # Ancestral step: the Gaussian posterior q(x_s | x_t, x_0) with x_0 estimated.
                a_ts = a_t / a_s
                var_ts = s_t**2 - a_ts**2 * s_s**2
                mean = a_ts * s_s**2 / s_t**2 * x + a_s * var_ts / s_t**2 * x0
                std = torch.sqrt(var_ts * s_s**2 / s_t**2)
                z = torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype)
                x = mean + std * z
            x = x * m
        return x

    def __post_init__(self) -> None:
        if self.prediction not in ("eps", "v"):
            raise ValueError(f"prediction: must be 'eps' or 'v', got {self.prediction!r}")
        if not 0 < self.t_min < 1 or self.beta_min <= 0 or self.beta_max <= self.beta_min:
            raise ValueError("beta_min: VP diffusion needs 0 < t_min < 1 and 0 < beta_min < beta_max")
