"""Maximum likelihood for CaloPointFlow II: a variational bound over a shower latent, trained on
the showers' own variables (seed-models.md §3.1).

The loss of a shower is the sum of four terms, each divided by its dimension: the conditions'
negative log-likelihood (hits and energy sum given the incident energy), the posterior's negative
entropy and the latent prior's negative log-likelihood (together the KL term of the bound), and
the mean over the shower's points of their negative log-likelihood; the step minimises its mean
over the batch. Long showers are cut into chunks under ``data.max_points`` (:meth:`chunks`), so
memory follows the cap, not the batch's longest shower.

Sampling: the conditions flow draws each shower's hit count and energy sum for its incident
energy (:meth:`sample_fields`), the latent flow a latent, the point flow the points.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .base import DataSpec, Method, StepContext, split_batch

__all__ = ["PointFlowMethod"]


class PointFlowMethod(Method):
    """Module ``flow``: a :class:`~pcmodels.networks.pointflow.CaloPointFlowNet`.

    Args:
        net: the network.
        data: the training data (point features, the three shower variables).
    """

    samplers = ("direct",)
    chunked = True

    def __init__(self, net: torch.nn.Module, data: DataSpec, *, max_points: int | None = None):
        self.modules = {"flow": net}
        self.data = data
        self.latent_dim = net.config.latent_dim
        self.max_points = max_points

    def _terms(self, net, batch: dict, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = batch["mask"]
        x = batch["points"] * mask.unsqueeze(-1).to(batch["points"].dtype)
        return net(x, mask, batch["cloud"].to(x.dtype), eps)

    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, float]:
        eps = ctx.randn(batch["mask"].shape[0], self.latent_dim).to(batch["points"].device)
        totals: dict[str, float] = {}
        for part, share in ctx.chunks(batch, "flow"):
            with ctx.autocast():
                terms = self._terms(ctx.modules["flow"], part, eps[part["rows"]])
            loss = sum(t.float().mean() for t in terms.values())
            (share * loss).backward()
            for k, t in terms.items():
                totals[k] = totals.get(k, 0.0) + share * float(t.detach().float().mean())
        ctx.update("flow")
        return {"loss": sum(totals.values()), **{f"nll_{k}" if k != "entropy" else "neg_entropy": v
                                                 for k, v in totals.items()}}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """``val_loss``: the training loss on validation showers (fixed latent noise), the
        reference's checkpoint criterion."""
        total, count = 0.0, 0
        net = self.modules["flow"]
        for i, batch in enumerate(batches):
            g = torch.Generator(device=batch["mask"].device).manual_seed(1000 + i)
            eps = torch.randn(batch["mask"].shape[0], self.latent_dim, generator=g, device=batch["mask"].device)
            for part, _ in split_batch(batch, self.max_points):  # memory bounded as in training
                terms = self._terms(net, part, eps[part["rows"]])
                total += float(sum(t.sum() for t in terms.values()))
            count += batch["mask"].shape[0]
        return {"val_loss": total / count} if count else {}

    def sampler_settings(self, sampler, steps):
        if sampler not in (None, "direct"):
            raise ValueError(f"sampler {sampler!r} is not one of {', '.join(self.samplers)}")
        return {"sampler": "direct", "steps": None, "network_evaluations": 1}

    @torch.no_grad()
    def sample_fields(self, cloud: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
        net = self.modules["flow"]
        dev = generator.device if generator is not None else "cpu"
        noise = torch.randn((cloud.shape[0], cloud.shape[1] - 1), generator=generator, device=dev).to(cloud.device)
        return net.sample_conditions(cloud[:, :1].float(), noise)

    @torch.no_grad()
    def sample(self, mask, cond, *, generator, sampler=None, steps=None):
        self.sampler_settings(sampler, steps)
        net = self.modules["flow"]
        dev = generator.device if generator is not None else "cpu"
        b, n = mask.shape
        latent = torch.randn((b, self.latent_dim), generator=generator, device=dev).to(mask.device)
        points = torch.randn((b, n, self.data.features), generator=generator, device=dev).to(mask.device)
        return net.sample_points(mask, cond.float(), latent, points)
