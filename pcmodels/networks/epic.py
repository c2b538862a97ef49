"""EPiC: equivariant point cloud layers with a global latent vector (Buhmann et al., EPiC-GAN/EPiC-FM).

Each layer updates a global vector ``g`` from the masked mean and 0.01 x masked sum of the points,
then every point from itself and the new ``g``; both updates are residual two-layer MLPs with
weight norm and LeakyReLU. The time embedding and the conditioning vector are concatenated into
every update, so one network serves flow matching (a velocity) and diffusion (a noise estimate).
The cost is linear in the number of points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["EPiCConfig", "EPiCLayer", "EPiCNetwork", "cosine_embedding", "masked_pool"]


@dataclass(frozen=True)
class EPiCConfig:
    """Sizes of an EPiC network.

    Attributes:
        features: point features in and out (3 for jets: etarel, phirel, ptrel).
        cond: conditioning features per cloud (0 for none).
        hidden: width of the per-point vectors and MLPs (EPiC-FM: 128).
        latent: size of the global vector (EPiC-FM: 10).
        layers: number of EPiC layers (EPiC-FM: 6).
        time_dim: size of the cosine time embedding (EPiC-FM: 32).
        sum_scale: weight of the masked sum next to the mean in the pooling (EPiC: 0.01).
    """

    features: int = 3
    cond: int = 0
    hidden: int = 128
    latent: int = 10
    layers: int = 6
    time_dim: int = 32
    sum_scale: float = 0.01

    def __post_init__(self) -> None:
        for name in ("features", "hidden", "latent", "layers", "time_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"EPiCConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.time_dim % 2:
            raise ValueError(f"EPiCConfig.time_dim must be even, got {self.time_dim}")


def cosine_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t w_k), sin(t w_k)]`` of times ``t`` in [0, 1], shape ``[B, dim]``.

    Frequencies are geometric from 1 to ``max_period`` (scaled by 1000 so [0, 1] spans many periods).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.reshape(-1, 1).float() * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def masked_pool(x: torch.Tensor, mask: torch.Tensor, sum_scale: float) -> torch.Tensor:
    """``[mean over real points, sum_scale * sum over real points]``: ``[B, 2 H]``."""
    m = mask.unsqueeze(-1).to(x.dtype)
    total = (x * m).sum(dim=1)
    count = m.sum(dim=1).clamp_min(1.0)
    return torch.cat([total / count, sum_scale * total], dim=1)


def _linear(n_in: int, n_out: int) -> nn.Module:
    return weight_norm(nn.Linear(n_in, n_out))


class EPiCLayer(nn.Module):
    """One EPiC layer: global update from pooled points, then per-point update from the global vector."""

    def __init__(self, hidden: int, latent: int, extra: int, sum_scale: float):
        super().__init__()
        self.sum_scale = sum_scale
        self.global1 = _linear(2 * hidden + latent + extra, hidden)
        self.global2 = _linear(hidden, latent)
        self.local1 = _linear(hidden + latent + extra, hidden)
        self.local2 = _linear(hidden, hidden)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor, g: torch.Tensor, extra: torch.Tensor, mask: torch.Tensor):
        pooled = masked_pool(x, mask, self.sum_scale)
        g = g + self.act(self.global2(self.act(self.global1(torch.cat([pooled, g, extra], dim=1)))))
        n = x.shape[1]
        local_in = torch.cat([x, g.unsqueeze(1).expand(-1, n, -1), extra.unsqueeze(1).expand(-1, n, -1)], dim=2)
        x = x + self.act(self.local2(self.act(self.local1(local_in))))
        return x * mask.unsqueeze(-1).to(x.dtype), g


class EPiCNetwork(nn.Module):
    """Maps noisy points ``x_t`` [B, N, F], time ``t`` [B] and conditions [B, C] to ``[B, N, F]``.

    Padded points (mask False) come out as zeros and do not influence real ones.
    """

    def __init__(self, config: EPiCConfig):
        super().__init__()
        self.config = c = config
        extra = c.time_dim + c.cond
        self.local_in = _linear(c.features + extra, c.hidden)
        self.global_in = _linear(2 * c.hidden + extra, c.latent)
        self.layers = nn.ModuleList(EPiCLayer(c.hidden, c.latent, extra, c.sum_scale) for _ in range(c.layers))
        self.local_out = _linear(c.hidden + extra, c.features)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        extra = cosine_embedding(t, c.time_dim).to(x.dtype)
        if c.cond:
            if cond is None or cond.shape[-1] != c.cond:
                raise ValueError(f"expected cond of shape [B, {c.cond}], got {None if cond is None else tuple(cond.shape)}")
            extra = torch.cat([extra, cond.to(x.dtype)], dim=1)
        n = x.shape[1]
        m = mask.unsqueeze(-1).to(x.dtype)
        expand = lambda v: v.unsqueeze(1).expand(-1, n, -1)  # noqa: E731
        h = self.act(self.local_in(torch.cat([x, expand(extra)], dim=2))) * m
        g = self.act(self.global_in(torch.cat([masked_pool(h, mask, c.sum_scale), extra], dim=1)))
        for layer in self.layers:
            h, g = layer(h, g, extra, mask)
        return self.local_out(torch.cat([h, expand(extra)], dim=2)) * m
