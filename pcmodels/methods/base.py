"""What every generative method offers the trainer and the sampler."""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["Method", "masked_mse"]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real points only (padding never contributes)."""
    m = mask.unsqueeze(-1).to(pred.dtype)
    n = (m.sum() * pred.shape[-1]).clamp_min(1.0)
    return (((pred - target) ** 2) * m).sum() / n


class Method(Protocol):
    """A training objective and its samplers, over a network ``net(x, t, mask, cond)``."""

    name: str
    samplers: tuple[str, ...]

    def loss(self, net, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None,
             generator: torch.Generator | None = None) -> torch.Tensor: ...

    def sample(self, net, noise: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None, *,
               solver: str, steps: int, generator: torch.Generator | None = None) -> torch.Tensor: ...
