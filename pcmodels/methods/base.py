"""What every method offers the trainer and the sampler, and what the trainer offers a step.

A :class:`Method` owns its named modules (``net``; ``generator`` and ``critic``...) and its
training step: :meth:`Method.train_step` receives a batch and a :class:`StepContext`, calls the
(DDP-wrapped) modules through ``ctx.modules``, updates them with ``ctx.optimise(name, loss)`` and
returns the scalars to log. The trainer keeps what is common: data, DDP, EMA, optimisers,
schedulers, checkpoints, logs. :meth:`Method.sample` turns masks and conditions into points in the
model's (transformed) feature space; the sampler's own options come as keywords.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Protocol

import numpy as np
import torch
from torch import nn

__all__ = ["Method", "DataSpec", "StepContext", "Draws", "masked_mse", "batch_cond", "split_batch", "sorted_runs"]


@dataclass(frozen=True)
class DataSpec:
    """What a method knows of its data, measured on the training split.

    Attributes:
        point_features: names of the point features (columns of ``points``).
        cond_fields: names of the cloud fields in ``cloud`` (standardised), in order.
        max_points: the padded length, or the longest cloud of the split.
        mean_points: the mean multiplicity (MDMA's ``avg_n``).
        lower, upper: per point feature, the training range in the transformed space (clamps).
    """

    point_features: tuple[str, ...]
    cond_fields: tuple[str, ...]
    max_points: int
    mean_points: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def features(self) -> int:
        return len(self.point_features)

    def to_dict(self) -> dict[str, Any]:
        return {"point_features": list(self.point_features), "cond_fields": list(self.cond_fields),
                "max_points": self.max_points, "mean_points": self.mean_points, "lower": list(self.lower),
                "upper": list(self.upper)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSpec":
        return cls(tuple(d["point_features"]), tuple(d["cond_fields"]), int(d["max_points"]), float(d["mean_points"]),
                   tuple(d["lower"]), tuple(d["upper"]))


class Draws:
    """Random draws of one step, the same on every rank: each draw is made for the global batch
    (``world_size`` times the local rows) from one generator, and a rank keeps its own rows. So a
    run on 2 ranks draws exactly what one process would draw for the union of their batches.

    Args:
        generator: the step's generator (a function of the seed and the step only).
        rank, world_size: this process among the training processes.
    """

    def __init__(self, generator: torch.Generator | None, rank: int = 0, world_size: int = 1):
        self.generator, self.rank, self.world_size = generator, rank, world_size

    def _draw(self, fn, shape: tuple[int, ...]) -> torch.Tensor:
        device = self.generator.device if self.generator is not None else torch.device("cpu")
        full = fn((shape[0] * self.world_size, *shape[1:]), generator=self.generator, device=device)
        return full[self.rank * shape[0] : (self.rank + 1) * shape[0]]

    def randn(self, *shape: int) -> torch.Tensor:
        return self._draw(torch.randn, shape)

    def rand(self, *shape: int) -> torch.Tensor:
        return self._draw(torch.rand, shape)

    def mean_count(self, count: torch.Tensor) -> torch.Tensor:
        count = count.detach().to(torch.float64)
        if self.world_size > 1:
            import torch.distributed as dist

            count = count.clone()
            dist.all_reduce(count)
            count = count / self.world_size
        return count


class StepContext(Protocol):
    """What the trainer gives one training step (see :class:`pcmodels.training.step.Context`)."""

    step: int
    modules: dict[str, nn.Module]
    world_size: int

    def randn(self, *shape: int) -> torch.Tensor:
        """Gaussian draws for this rank's rows of the global batch (``shape[0]`` local rows)."""

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform draws, as :meth:`randn`."""

    def mean_count(self, count: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a local count (denominator of a per-point mean of the global batch)."""

    def optimise(self, name: str, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` into module ``name``, clip, step its optimiser and schedule, update its EMA."""

    def autocast(self) -> Any:
        """The mixed-precision context of this run (a no-op on the CPU)."""

    def chunks(self, batch: dict, *names: str) -> Iterable[tuple[dict, float]]:
        """The batch in chunks under the run's ``data.max_points`` cap, with each chunk's share of
        the clouds (see :meth:`pcmodels.training.step.Context.chunks`); then :meth:`update`."""

    def update(self, name: str) -> None:
        """Step module ``name`` from the gradients accumulated over :meth:`chunks`."""


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               count: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over real points only (padding never contributes).

    ``count`` replaces the number of real points in the denominator: with the mean over ranks of
    the local counts, the ranks' averaged gradients equal those of the union batch.
    """
    m = mask.unsqueeze(-1).to(pred.dtype)
    n = (mask.sum() if count is None else count).to(pred.dtype) * pred.shape[-1]
    return (((pred - target) ** 2) * m).sum() / n.clamp_min(1.0)


def sorted_runs(counts: np.ndarray, max_points: int) -> list[np.ndarray]:
    """Row numbers sorted by ``counts`` (stable), cut into runs whose padded size (rows times
    the run's largest count) stays within ``max_points``; a row larger than that is a run of its own."""
    order = np.argsort(counts, kind="stable")
    runs, start = [], 0
    for i in range(1, len(order) + 1):
        # Ascending counts: a run's padded size is its length times its last row's count.
        if i == len(order) or (i + 1 - start) * max(1, int(counts[order[i]])) > max_points:
            runs.append(order[start:i])
            start = i
    return runs


def split_batch(batch: dict, max_points: int | None) -> list[tuple[dict, float]]:
    """Cut a padded batch into chunks of at most ``max_points`` padded points (:func:`sorted_runs`),
    each trimmed to its longest cloud; with each chunk's share of the clouds. None: the whole
    batch, trimmed. ``rows`` in a chunk holds its clouds' positions in the batch (to slice draws
    made for the batch)."""
    mask = batch["mask"]
    b = mask.shape[0]
    counts = mask.sum(1)
    if max_points is None:
        n = int(counts.max()) if b else 0
        return [({**batch, "points": batch["points"][:, :n], "mask": mask[:, :n],
                  "rows": torch.arange(b, device=mask.device)}, 1.0)]
    sizes = counts.cpu().numpy()
    parts = []
    for run in sorted_runs(sizes, max_points):
        idx = torch.as_tensor(run, device=mask.device)
        n = max(1, int(sizes[run[-1]]))
        part = {k: (v[idx][:, :n] if k in ("points", "mask") else v[idx]) if torch.is_tensor(v) and v.shape[:1] == (b,)
                else v for k, v in batch.items()}
        part["rows"] = idx
        parts.append((part, len(run) / b))
    return parts


def batch_cond(batch: dict) -> torch.Tensor | None:
    """The batch's cloud fields, or None when the model is conditioned on none."""
    cloud = batch.get("cloud")
    return cloud if cloud is not None and cloud.shape[-1] else None


class Method(ABC):
    """A generative method over named modules.

    Subclasses set ``modules`` (all networks by name) in ``__init__(config, data)``.
    """

    name: ClassVar[str]
    modules: dict[str, nn.Module]
    #: Whether :meth:`train_step` cuts batches under ``data.max_points`` (``ctx.chunks``).
    chunked: ClassVar[bool] = False

    @abstractmethod
    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, float]:
        """One training step on a batch (``points`` [B, N, F], ``mask`` [B, N], ``cloud`` [B, C]);
        returns the scalars to log (finite, or the trainer stops the run)."""

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Scores on validation batches with the current (EMA) weights; empty when the method has none.
        Lower is better for every returned key."""
        return {}

    @abstractmethod
    def sample(self, mask: torch.Tensor, cond: torch.Tensor | None, *, generator: torch.Generator | None,
               sampler: str | None = None, steps: int | None = None) -> torch.Tensor:
        """Points ``[B, N, F]`` in the transformed space, zero where ``mask`` is False."""

    def sample_fields(self, cloud: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
        """Conditioning fields ``[B, C]`` (transformed) with the ones the model generates itself
        drawn (CaloPointFlow's hit count and energy sum, given the incident energy); the default
        models none and returns ``cloud``."""
        return cloud

    def bind_transforms(self, transforms: Any) -> None:
        """Called with the run's bound transforms (fitted on the training split) once the method is
        built, by the trainer and when a run is loaded: for a model whose output step works in
        physical units (DeepTreeGAN's p_T fractions summing to one). The default needs none."""

    def sampler_settings(self, sampler: str | None, steps: int | None) -> dict[str, Any]:
        """The sampler and options a call with these arguments uses (for reports)."""
        return {"sampler": sampler, "steps": steps}

    def eval(self) -> "Method":
        for m in self.modules.values():
            m.eval()
        return self

    def to(self, device: torch.device | str) -> "Method":
        for m in self.modules.values():
            m.to(device)
        return self

    def parameters(self) -> int:
        return sum(p.numel() for m in self.modules.values() for p in m.parameters())
