"""A generator and a critic trained adversarially, with mean-field feature matching (MDMA).

One training step is one critic update on a batch (real against generated clouds of the same
masks and conditions, in one critic pass over both), and every ``critic_steps``-th step also one
generator update on fresh noise. Generated clouds are clamped to the training range of each
feature (a ReLU clamp, so the gradient passes inside the range) and their padding zeroed, in
training as at sampling. Early in training (``step < mean_field_steps``) the generator also matches
the critic's last mean-field token of the real batch (taken in the critic step before).

Losses (:data:`GAN_LOSSES`): least squares (critic ``(D(x)-1)^2 + D(G(z))^2``, generator
``0.5 (D(G(z))-1)^2``), hinge, Wasserstein. A critic whose mean output passes ``critic_limit`` or
any non-finite loss stops the run (:class:`~pcmodels.errors.TrainingDiverged`).

Critics with several heads (DeepTreeGAN's tree critic scores every pooling level) return scores
``[B, L]``: the loss is taken per level (a column) and summed over the levels. Feature matching
comes in two kinds (:data:`FeatureMatching`): ``mean_field`` (MDMA: the squared distance of the
critic's last token to the real batch's) and ``levels`` (DeepTreeGAN: for the critic's pooled
features at every level, standardised by the real batch's mean and standard deviation, the mean
absolute value of the generated batch's mean; i.e. the L1 distance of the standardised means).
Generators with a ``latent`` attribute (one noise vector per cloud, DeepTreeGAN's tree root) get
noise ``[B, latent]``; the others per-point noise ``[B, N, F]`` with the padding zeroed. A
generator may make more points than the batch holds (DeepTreeGAN's full tree): the first ``N``
are kept. :meth:`AdversarialMethod.postprocess` is the hook for a model's own output step.
"""

from __future__ import annotations

from typing import Callable, Iterable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TrainingDiverged
from .base import DataSpec, Method, StepContext

__all__ = ["AdversarialMethod", "GAN_LOSSES", "GanLoss", "FeatureMatching", "per_level_loss", "level_matching"]

GanLoss = Literal["lsgan", "hinge", "wgan"]
FeatureMatching = Literal["mean_field", "levels"]


def _lsgan(real, fake, critic: bool):
    if critic:
        return F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
    return 0.5 * F.mse_loss(fake, torch.ones_like(fake))


def _hinge(real, fake, critic: bool):
    if critic:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return -fake.mean()


def _wgan(real, fake, critic: bool):
    return (fake - real).mean() if critic else -fake.mean()


GAN_LOSSES: dict[str, Callable] = {"lsgan": _lsgan, "hinge": _hinge, "wgan": _wgan}

def per_level_loss(loss: Callable, real: torch.Tensor | None, fake: torch.Tensor, critic: bool) -> torch.Tensor:
    """``loss`` on each column of scores ``[B, L]`` (one per critic level), summed over the levels."""
    fake = fake.reshape(fake.shape[0], -1)
    real = None if real is None else real.reshape(real.shape[0], -1)
    return sum(loss(None if real is None else real[:, k], fake[:, k], critic) for k in range(fake.shape[1]))


def level_matching(fake: list[torch.Tensor], real: list[torch.Tensor],
                   across: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """DeepTreeGAN's feature matching: per level, the features ``[B, D]`` standardised by the real
    batch's mean and standard deviation; the mean over levels and features of ``|mean_B(fake)|``
    (the real batch's standardised mean being zero).

    ``across`` (``ctx.mean_count``) averages a detached tensor over the training processes: the
    statistics are then those of the global batch, and each rank's gradient is its clouds' share
    of the global batch's (DDP's average of the ranks' gradients equals one process on the union).
    """
    def avg(t: torch.Tensor) -> torch.Tensor:
        return t.detach() if across is None else across(t.detach()).to(t.dtype)

    terms = []
    for f, r in zip(fake, real):
        mu = avg(r.mean(0))
        # two passes (the global mean, then the spread about it): E[r^2] - mu^2 cancels to float noise
        # for a nearly constant feature, and 1 / sd would then amplify that noise into the step
        sd = avg(((r - mu) ** 2).mean(0)).sqrt().clamp_min(1e-6)
        local = f.mean(0)
        # The global mean's value, with the gradient of this rank's own clouds.
        mean = local - local.detach() + avg(local)
        terms.append(((mean - mu) / sd).abs().mean())
    return torch.stack(terms).mean()


#: Seed of the fixed validation noise.
VAL_SEED = 54321


class AdversarialMethod(Method):
    """Modules ``generator(z, mask, cond)`` and ``critic(x, mask, cond) -> (score, mean_field)``.

    Args:
        generator, critic: the networks.
        data: the training data (feature ranges for the clamp, mean multiplicity).
        loss: one of :data:`GAN_LOSSES`.
        critic_steps: critic updates per generator update (MDMA jets 1, showers 3).
        mean_field_steps: steps during which the feature-matching loss is added (MDMA: 50,000; 0:
            never; None: always).
        matching: the kind of feature matching (:data:`FeatureMatching`).
        matching_weight: its weight in the generator loss (MDMA 1, DeepTreeGAN 0.1).
        critic_limit: the largest mean |critic output| before the run counts as diverged.
        gradient_penalty: weight of the WGAN-GP penalty (MDMA showers; 0: none): ``(|grad D| - 1)^2``
            at one random interpolation per cloud between a real and a generated cloud, the norm
            over all points and features of the cloud, with the real cloud's mask.
    """

    samplers = ("direct",)

    def __init__(self, generator: torch.nn.Module, critic: torch.nn.Module, data: DataSpec, *, loss: GanLoss = "lsgan",
                 critic_steps: int = 1, mean_field_steps: int | None = 50_000, critic_limit: float = 1e4,
                 gradient_penalty: float = 0.0, matching: FeatureMatching = "mean_field", matching_weight: float = 1.0):
        self.modules = {"generator": generator, "critic": critic}
        self.data = data
        self.loss, self.critic_steps, self.mean_field_steps = GAN_LOSSES[loss], critic_steps, mean_field_steps
        self.critic_limit = critic_limit
        self.gradient_penalty = gradient_penalty
        self.matching, self.matching_weight = matching, matching_weight
        self._lower = torch.tensor(data.lower, dtype=torch.float32)
        self._upper = torch.tensor(data.upper, dtype=torch.float32)

    # -- pieces ------------------------------------------------------------------------------------
    def condition(self, cloud: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """``[cloud fields..., n / mean_n]``: the multiplicity condition comes from the mask."""
        n = mask.sum(1, keepdim=True).to(torch.float32) / self.data.mean_points
        return n if cloud is None or not cloud.shape[-1] else torch.cat([cloud.to(torch.float32), n], dim=1)

    def finish(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Clamp to the training range (ReLU form: gradients pass inside it) and zero the padding."""
        lo, hi = self._lower.to(x.device, x.dtype), self._upper.to(x.device, x.dtype)
        x = F.relu(x - lo) + lo
        x = hi - F.relu(hi - x)
        return x * mask.unsqueeze(-1).to(x.dtype)

    def postprocess(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A model's own step after :meth:`finish` (DeepTreeGAN: p_T fractions summing to one)."""
        return x

    def noise_shape(self, mask: torch.Tensor) -> tuple[int, ...]:
        """One latent vector per cloud when the generator has ``latent``; else one per point."""
        latent = getattr(self.modules["generator"], "latent", None)
        return (mask.shape[0], latent) if latent is not None else (*mask.shape, self.data.features)

    def _generate(self, generator, z, mask, cond):
        if z.dim() == 3:
            z = z * mask.unsqueeze(-1).to(z.dtype)
        x = generator(z, mask, cond)[:, : mask.shape[1]]
        return self.postprocess(self.finish(x, mask), mask)

    def _loss(self, real, fake, critic: bool):
        return per_level_loss(self.loss, real, fake, critic)

    def _matching(self, fake_field, real_field, ctx: StepContext) -> torch.Tensor:
        if self.matching == "levels":
            return level_matching([f.float() for f in fake_field], [r.float() for r in real_field], ctx.mean_count)
        return ((fake_field.float() - real_field.float()) ** 2).mean()

    # -- training ----------------------------------------------------------------------------------
    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, float]:
        mask = batch["mask"]
        x = batch["points"] * mask.unsqueeze(-1).to(batch["points"].dtype)
        cond = self.condition(batch.get("cloud"), mask)
        b = x.shape[0]
        gen, critic = ctx.modules["generator"], ctx.modules["critic"]
        with torch.no_grad(), ctx.autocast():
            fake = self._generate(gen, ctx.randn(*self.noise_shape(mask)).to(x.device), mask, cond)
        with ctx.autocast():
            # One pass over real and generated clouds (DDP prefers one forward per backward).
            scores, field = critic(torch.cat([x, fake.to(x.dtype)]), torch.cat([mask, mask]), torch.cat([cond, cond]))
            real_score, fake_score = scores[:b].float(), scores[b:].float()
            loss_critic = self._loss(real_score, fake_score, True)
        out = {"loss_critic": float(loss_critic.detach()), "critic_real": float(real_score.detach().mean()),
               "critic_fake": float(fake_score.detach().mean())}
        if self.gradient_penalty > 0:
            a = ctx.rand(b, 1, 1).to(x.device, x.dtype)
            inter = (a * x + (1 - a) * fake.to(x.dtype)).requires_grad_(True)
            # Double back-propagation: the fused CPU attention kernels have no second derivative.
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with ctx.autocast(), sdpa_kernel(SDPBackend.MATH):
                score_inter, _ = critic(inter, mask, cond)
            (grad,) = torch.autograd.grad(score_inter.float().sum(), inter, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
            loss_critic = loss_critic + self.gradient_penalty * penalty
            out["gradient_penalty"] = float(penalty.detach())
        if max(abs(out["critic_real"]), abs(out["critic_fake"])) > self.critic_limit:
            raise TrainingDiverged(f"the critic exploded (mean output {out['critic_real']:.3g} on real, "
                                   f"{out['critic_fake']:.3g} on generated clouds; limit {self.critic_limit:g})")
        ctx.optimise("critic", loss_critic)
        if ctx.step % self.critic_steps == 0:
            real_field = [f[:b].detach() for f in field] if isinstance(field, (list, tuple)) else field[:b].detach()
            with ctx.autocast():
                fake = self._generate(gen, ctx.randn(*self.noise_shape(mask)).to(x.device), mask, cond)
                score, fake_field = critic(fake, mask, cond)
                loss_gen = self._loss(None, score.float(), False)
                total = loss_gen
                if self.mean_field_steps is None or ctx.step < self.mean_field_steps:
                    loss_mf = self._matching(fake_field, real_field, ctx)
                    total = loss_gen + self.matching_weight * loss_mf
                    out["loss_mean_field" if self.matching == "mean_field" else "loss_matching"] = float(loss_mf.detach())
            ctx.optimise("generator", total)
            out["loss_generator"] = float(loss_gen.detach())
        return out

    @torch.no_grad()
    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """``val_w1``: the mean over point features of the 1-d Wasserstein distance between real and
        generated points (standardised space), generated for the validation clouds' masks and
        conditions with fixed noise. The reference selects checkpoints on such a distance (W1M)."""
        from scipy.stats import wasserstein_distance

        real, fake = [], []
        for i, batch in enumerate(batches):
            mask = batch["mask"]
            g = torch.Generator(device=mask.device).manual_seed(VAL_SEED + i)
            gen = self.sample(mask, batch.get("cloud"), generator=g)
            real.append(batch["points"][mask].cpu().numpy())
            fake.append(gen[mask].cpu().numpy())
        if not real:
            return {}
        r, f = np.concatenate(real), np.concatenate(fake)
        return {"val_w1": float(np.mean([wasserstein_distance(r[:, j], f[:, j]) for j in range(r.shape[1])]))}

    # -- sampling ----------------------------------------------------------------------------------
    def sampler_settings(self, sampler, steps):
        if sampler not in (None, "direct"):
            raise ValueError(f"sampler {sampler!r} is not one of {', '.join(self.samplers)}")
        return {"sampler": "direct", "steps": None, "network_evaluations": 1}

    @torch.no_grad()
    def sample(self, mask, cond, *, generator, sampler=None, steps=None):
        self.sampler_settings(sampler, steps)
        shape = self.noise_shape(mask)
        z = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu").to(mask.device)
        return self._generate(self.modules["generator"], z, mask, self.condition(cond, mask))
