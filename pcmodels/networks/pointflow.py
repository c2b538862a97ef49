"""CaloPointFlow II networks (Schnake, Krücker, Borras, arXiv 2403.15782; seed-models.md §3.1).

Three flows and a set encoder, with zuko's spline transforms (the reference's library):

- :class:`SetEncoder`: DeepSets, a point MLP, the mean over the shower's points, a latent MLP,
  heads to the mean and log-variance of the 128-dim latent (a VAE posterior).
- the **condition flow** p(hits, energy sum | E_inc): a zuko neural spline flow (``NSF``).
- the **latent flow** p(z | shower variables): spline coupling layers with random masks (zuko
  ``GeneralCouplingTransform`` with ``MonotonicRQSTransform``).
- :class:`DeepSetFlow` p(point | shower variables, z): coupling layers over the point's features
  whose conditioner also sees a DeepSet summary (point MLP, mean over the shower, reduce MLP) of
  the unchanged coordinates of every point of the same shower: point-to-point correlations.

Every mean over points skips the padding, so padded entries never change a real value. The
conditioner's first layer is split into a per-point and a per-shower part (the same linear map of
the concatenation, without repeating the shower part for every point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import zuko
from torch import nn
from zuko.transforms import MonotonicRQSTransform

__all__ = ["PointFlowConfig", "SetEncoder", "DeepSetFlow", "CaloPointFlowNet", "masked_mean"]

_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class PointFlowConfig:
    """Sizes of CaloPointFlow II (defaults: the paper's ds2/ds3 configuration).

    Attributes:
        point_dim: features per point (3: layer, radius, energy fraction).
        cond_dim: shower variables (3: log E_inc, energy sum, hits; the first conditions the rest).
        latent_dim: the shower latent (128).
        encoder_point, encoder_latent: widths of the encoder's point and latent MLPs.
        cond_transforms, cond_bins, cond_hidden: the condition flow (12, 12, 128 x 3).
        latent_transforms, latent_bins, latent_hidden: the latent flow (8, 8, 1024 x 3).
        point_transforms, point_bins, point_hidden: the point flow (12, 8, 128 x 3).
        summary_point, summary_reduce: the point flow's DeepSet (64-128-512, 512-256-128).
        seed: names the random coupling masks.
    """

    point_dim: int = 3
    cond_dim: int = 3
    latent_dim: int = 128
    encoder_point: tuple[int, ...] = (64, 128, 1024)
    encoder_latent: tuple[int, ...] = (1024, 512, 512)
    cond_transforms: int = 12
    cond_bins: int = 12
    cond_hidden: tuple[int, ...] = (128, 128, 128)
    latent_transforms: int = 8
    latent_bins: int = 8
    latent_hidden: tuple[int, ...] = (1024, 1024, 1024)
    point_transforms: int = 12
    point_bins: int = 8
    point_hidden: tuple[int, ...] = (128, 128, 128)
    summary_point: tuple[int, ...] = (64, 128, 512)
    summary_reduce: tuple[int, ...] = (512, 256, 128)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("point_dim", "cond_dim", "latent_dim", "cond_transforms", "latent_transforms", "point_transforms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.point_dim < 2 or self.cond_dim < 2:
            raise ValueError("point_dim and cond_dim: coupling layers need at least 2 features")
        for name in ("cond_bins", "latent_bins", "point_bins"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}: must be >= 2, got {getattr(self, name)}")
        for name in ("encoder_point", "encoder_latent", "cond_hidden", "latent_hidden", "point_hidden", "summary_point",
                     "summary_reduce"):
            v = getattr(self, name)
            if not v or min(v) < 1:
                raise ValueError(f"{name}: must be a non-empty list of widths >= 1, got {list(v)}")


def mlp(widths: list[int], act: type[nn.Module] = nn.GELU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real points of each cloud: ``[B, N, F], [B, N] -> [B, F]``."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class SetEncoder(nn.Module):
    """DeepSets posterior q(z | shower): ``(mu, log_var)`` of the latent."""

    def __init__(self, c: PointFlowConfig):
        super().__init__()
        self.point = mlp([c.point_dim, *c.encoder_point, c.encoder_point[-1]])  # widths, then the final Linear
        self.latent = mlp([c.encoder_point[-1], *c.encoder_latent])
        self.act = nn.GELU()
        self.mu = nn.Linear(c.encoder_latent[-1], c.latent_dim)
        self.log_var = nn.Linear(c.encoder_latent[-1], c.latent_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(self.latent(masked_mean(self.point(x), mask)))
        return self.mu(h), self.log_var(h)


class _DeepSetCoupling(nn.Module):
    """One coupling layer: the ``out`` features through a rational-quadratic spline whose knots
    come from the ``in`` features of the point, the shower context and a DeepSet summary of the
    ``in`` features of all the shower's points."""

    def __init__(self, c: PointFlowConfig, context: int, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        n_in, n_out = int(mask.sum()), int((~mask).sum())
        self.bins, self.n_out = c.point_bins, n_out
        self.summary_point = mlp([n_in, *c.summary_point])
        self.summary_reduce = mlp([c.summary_point[-1], *c.summary_reduce])
        self.act = nn.GELU()
        width = c.point_hidden[0]
        self.first_point = nn.Linear(n_in, width)
        self.first_shower = nn.Linear(context + c.summary_reduce[-1], width, bias=False)
        self.rest = mlp([*c.point_hidden, n_out * (3 * c.point_bins - 1)])

    def _spline(self, x_in: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> MonotonicRQSTransform:
        s = self.summary_reduce(self.act(masked_mean(self.summary_point(x_in), mask)))
        h = self.first_point(x_in) + self.first_shower(torch.cat([context, s], -1)).unsqueeze(1)
        p = self.rest(self.act(h)).unflatten(-1, (self.n_out, 3 * self.bins - 1))
        k = self.bins
        return MonotonicRQSTransform(p[..., :k], p[..., k : 2 * k], p[..., 2 * k :])

    def forward(self, x, mask, context):
        """``(y, log|det J|)`` per point."""
        t = self._spline(x[..., self.mask], mask, context)
        y_out, ladj = t.call_and_ladj(x[..., ~self.mask])
        y = x.clone()
        y[..., ~self.mask] = y_out
        return y, ladj.sum(-1)

    def inverse(self, y, mask, context):
        t = self._spline(y[..., self.mask], mask, context)
        x = y.clone()
        x[..., ~self.mask] = t.inv(y[..., ~self.mask])
        return x


class DeepSetFlow(nn.Module):
    """p(point | context) with point-to-point correlations through each layer's DeepSet summary;
    a standard Gaussian base."""

    def __init__(self, c: PointFlowConfig, context: int):
        super().__init__()
        g = torch.Generator().manual_seed(c.seed)
        layers = []
        for i in range(c.point_transforms):
            # Random-permutation parity: a random half (at least one) of the features conditions.
            mask = (torch.randperm(c.point_dim, generator=g) % 2) == (i % 2)
            layers.append(_DeepSetCoupling(c, context, mask))
        self.layers = nn.ModuleList(layers)
        self.dim = c.point_dim

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` log-densities (zero at padding)."""
        ladj = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, l = layer(x, mask, context)
            ladj = ladj + l
        base = -0.5 * (x**2).sum(-1) - 0.5 * self.dim * _LOG_2PI
        return (base + ladj) * mask.to(x.dtype)

    def sample(self, mask: torch.Tensor, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = noise
        for layer in reversed(self.layers):
            x = layer.inverse(x, mask, context)
        return x * mask.unsqueeze(-1).to(x.dtype)


def _coupling_flow(features: int, context: int, transforms: int, bins: int, hidden: tuple[int, ...],
                   seed: int) -> zuko.flows.Flow:
    """Spline coupling layers with random masks (the reference's ``NeuralSplineCouplingFlow``)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(transforms):
        mask = torch.randperm(features, generator=g) < features // 2
        layers.append(zuko.flows.GeneralCouplingTransform(
            features, context, mask=mask, univariate=MonotonicRQSTransform,
            shapes=((bins,), (bins,), (bins - 1,)), hidden_features=hidden, activation=nn.GELU))
    base = zuko.flows.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(features),
                                                torch.ones(features), buffer=True)
    return zuko.flows.Flow(layers, base)


class CaloPointFlowNet(nn.Module):
    """All of CaloPointFlow II in one module (one optimiser, as the reference)."""

    def __init__(self, c: PointFlowConfig):
        super().__init__()
        self.config = c
        self.encoder = SetEncoder(c)
        self.conditions = zuko.flows.NSF(c.cond_dim - 1, 1, bins=c.cond_bins, transforms=c.cond_transforms,
                                         randperm=True, hidden_features=c.cond_hidden)
        self.latent = _coupling_flow(c.latent_dim, c.cond_dim, c.latent_transforms, c.latent_bins, c.latent_hidden,
                                     c.seed + 1)
        self.points = DeepSetFlow(c, c.cond_dim + c.latent_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-shower terms of the loss, each divided by its dimension (``[B]`` each):
        the conditions' NLL, the posterior's negative entropy, the latent prior's NLL, the mean
        point NLL."""
        c = self.config
        nll_cond = -self.conditions(cond[:, :1]).log_prob(cond[:, 1:]) / (c.cond_dim - 1)
        mu, log_var = self.encoder(x, mask)
        z = mu + torch.exp(0.5 * log_var) * eps
        entropy = 0.5 * c.latent_dim * (1 + _LOG_2PI) + 0.5 * log_var.sum(-1)
        nll_latent = -self.latent(cond).log_prob(z) / c.latent_dim
        context = torch.cat([cond, z], -1)
        n = mask.sum(1).clamp_min(1).to(x.dtype)
        nll_points = -self.points.log_prob(x, mask, context).sum(1) / n / c.point_dim
        return {"cond": nll_cond, "entropy": -entropy / c.latent_dim, "latent": nll_latent, "points": nll_points}

    def sample_conditions(self, e: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Shower variables ``[B, cond_dim]`` for the first ones ``e [B, 1]`` and noise ``[B, cond_dim - 1]``."""
        return torch.cat([e, self.conditions(e).transform.inv(noise)], -1)

    def sample_points(self, mask: torch.Tensor, cond: torch.Tensor, latent_noise: torch.Tensor,
                      point_noise: torch.Tensor) -> torch.Tensor:
        z = self.latent(cond).transform.inv(latent_noise)
        return self.points.sample(mask, torch.cat([cond, z], -1), point_noise)
