"""One network regressing a time-conditioned field: flow matching and diffusion (EPiC-FM, EPiC-JeDi).

The objective (:class:`~.flow_matching.FlowMatching` or :class:`~.diffusion.VPDiffusion`) gives
the loss and the samplers; this method owns the network ``net``, scales the standardised features
to std ``feature_scale`` (EPiC-FM: 5) and defines validation as the loss of the EMA weights on
fixed noise (comparable across epochs and runs).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from .base import DataSpec, Draws, Method, StepContext, batch_cond

__all__ = ["FieldMethod"]

#: Seed of the fixed validation noise.
VAL_SEED = 12345


class FieldMethod(Method):
    """A time-conditioned network ``net(x_t, t, mask, cond)`` trained with one objective.

    Args:
        objective: a FlowMatching or VPDiffusion (``loss``, ``sample``, ``samplers``).
        network: builds the network from the data (``network(data) -> nn.Module``).
        data: the training data's description.
        feature_scale: the standardised features are multiplied by this before the objective.
        samplers: the samplers offered (a subset of the objective's).
        default_sampler, default_steps: what a call that names none uses.
    """

    def __init__(self, objective: Any, network: Callable[[DataSpec], nn.Module], data: DataSpec, *,
                 feature_scale: float, samplers: tuple[str, ...], default_sampler: str, default_steps: int = 100):
        self.objective, self.data, self.feature_scale = objective, data, feature_scale
        self.samplers = samplers
        self.default_sampler, self.default_steps = default_sampler, default_steps
        self.modules = {"net": network(data)}

    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, float]:
        x = batch["points"] * self.feature_scale
        with ctx.autocast():
            loss = self.objective.loss(ctx.modules["net"], x, batch["mask"], batch_cond(batch), ctx)
        ctx.optimise("net", loss)
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        net = self.modules["net"]
        losses = []
        for i, batch in enumerate(batches):
            device = batch["points"].device
            draws = Draws(torch.Generator(device=device).manual_seed(VAL_SEED + i))
            losses.append(float(self.objective.loss(net, batch["points"] * self.feature_scale, batch["mask"],
                                                    batch_cond(batch), draws)))
        return {"val_loss": float(np.mean(losses))} if losses else {}

    def sampler_settings(self, sampler: str | None, steps: int | None) -> dict[str, Any]:
        from ..solvers import ODE_SOLVERS, function_evaluations

        sampler = sampler or self.default_sampler
        if sampler not in self.samplers:
            raise ValueError(f"sampler {sampler!r} is not one of {', '.join(self.samplers)}")
        steps = steps or self.default_steps
        evals = function_evaluations(sampler, steps) if sampler in ODE_SOLVERS else steps
        return {"sampler": sampler, "steps": steps, "network_evaluations": evals}

    @torch.no_grad()
    def sample(self, mask, cond, *, generator, sampler=None, steps=None):
        s = self.sampler_settings(sampler, steps)
        shape = (*mask.shape, self.data.features)
        noise = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
        x = self.objective.sample(self.modules["net"], noise.to(mask.device), mask, cond, solver=s["sampler"],
                                  steps=s["steps"], generator=generator)
        return x / self.feature_scale
