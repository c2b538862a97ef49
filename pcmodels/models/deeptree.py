"""DeepTreeGAN for jets and showers: tree generator and tree critic (seed-models.md §2).

Defaults are the v2 JetNet150 settings (``nips23DeepTreeGANv2`` run ``af5e229``): generator
branches (2, 3, 5, 5), widths (64, 33, 20, 10) -> 3, hidden 100, 10 global features, conditioned
on the multiplicity only; critic pooling 150 -> 30 -> 6 -> 1, widths (3, 10, 10, 10) x 16 heads,
spectral norm, a score per level, conditioned on the jet fields; hinge loss per level plus
feature matching x 0.1; one critic step per generator step; Adam betas (0.9, 0.999), weight
decay 1e-4, generator lr 1e-5, critic 3e-5, no schedule; batch 200.

Jets: eta and phi standardised, p_T fraction Box-Cox'ed then standardised, fitted on the training
split (:func:`deeptree_plan`); the generator makes the full tree, the first ``n`` points are kept
(``n`` from the real batch in training, from the run's conditioning model at sampling), and the
kept p_T fractions are renormalised to sum to one per jet in physical units
(:meth:`DeepTreeMethod.postprocess`, the reference's ``norm_pt_sum``); the critic sees that.
Showers: the MDMA shower data plan and finishing step; the branching of ``deeptree-ds2.yaml``
(2, 3, 6, 6, 6, 5) makes 6,480 points, the number of ds2 cells, so it covers any hit count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import OptimConfig
from ..data import DataPlan, shower_plan, standard_plan
from ..errors import ConfigError
from ..methods.base import DataSpec
from ..methods.gan import AdversarialMethod
from ..networks.deeptree import DeepTreeCritic, DeepTreeGenerator, TreeCriticConfig, TreeGeneratorConfig
from ..registry import ModelSpec, register

__all__ = ["DeepTreeSection", "DeepTreeMethodSection", "DeepTreeMethod", "deeptree_plan", "PT_FEATURE"]

#: The jet point feature renormalised to sum to one.
PT_FEATURE = "ptrel"


@dataclass(frozen=True)
class DeepTreeSection:
    """The ``network`` section (features, conditions and the mean multiplicity come from the data)."""

    branches: tuple[int, ...] = (2, 3, 5, 5)
    gen_widths: tuple[int, ...] = (64, 33, 20, 10)
    gen_hidden: int = 100
    n_global: int = 10
    gen_fields: bool = False
    critic_nodes: tuple[int, ...] = (30, 6, 1)
    critic_widths: tuple[int, ...] = (3, 10, 10, 10)
    critic_heads: int = 16
    critic_hidden: int = 100

    def __post_init__(self) -> None:
        probe = DataSpec(("x",), (), 1, 1.0, (0.0,), (1.0,))
        self.generator_config(probe), self.critic_config(probe)  # sizes checked now, with their keys

    def generator_config(self, data: DataSpec) -> TreeGeneratorConfig:
        try:
            return TreeGeneratorConfig(features=data.features, cond=len(data.cond_fields) + 1, branches=self.branches,
                                       widths=self.gen_widths, hidden=self.gen_hidden, n_global=self.n_global,
                                       use_fields=self.gen_fields)
        except ValueError as err:
            key, _, rest = str(err).partition(": ")
            key = {"widths": "gen_widths", "hidden": "gen_hidden"}.get(key, key)
            raise ValueError(f"{key}: {rest}") from None

    def critic_config(self, data: DataSpec) -> TreeCriticConfig:
        try:
            return TreeCriticConfig(features=data.features, cond=len(data.cond_fields) + 1, nodes=self.critic_nodes,
                                    widths=self.critic_widths, heads=self.critic_heads, hidden=self.critic_hidden,
                                    mean_points=data.mean_points)
        except ValueError as err:
            key, _, rest = str(err).partition(": ")
            raise ValueError(f"critic_{key}: {rest}") from None


@dataclass(frozen=True)
class DeepTreeMethodSection:
    """The ``method`` section."""

    critic_steps: int = 1
    feature_matching: float = 0.1
    critic_limit: float = 1e4
    pt_sum_one: bool = True

    def __post_init__(self) -> None:
        if self.critic_steps < 1:
            raise ValueError(f"critic_steps: must be >= 1, got {self.critic_steps}")
        if self.feature_matching < 0:
            raise ValueError(f"feature_matching: must be >= 0, got {self.feature_matching}")
        if self.critic_limit <= 0:
            raise ValueError(f"critic_limit: must be > 0, got {self.critic_limit}")


class DeepTreeMethod(AdversarialMethod):
    """The hinge GAN with per-level scores and feature matching, and the jets' p_T renormalisation.

    Args:
        pt_sum_one: renormalise the kept points' ``ptrel`` to sum to one per jet (jets only: used
            when the data has a ``ptrel`` feature and the run's transforms are bound).
    """

    def __init__(self, generator, critic, data: DataSpec, *, pt_sum_one: bool = True, **kw):
        super().__init__(generator, critic, data, **kw)
        self.pt_sum_one = pt_sum_one
        self._transforms = None

    def bind_transforms(self, transforms) -> None:
        if self.pt_sum_one and PT_FEATURE in self.data.point_features:
            self._transforms = transforms

    def postprocess(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The kept points' p_T fractions, in physical units, divided by their sum per jet; back
        through the transforms (the reference's inverse Box-Cox, normalise, Box-Cox)."""
        if self._transforms is None:
            return x
        j = self.data.point_features.index(PT_FEATURE)
        phys = self._transforms.inverse({"points": x, "mask": mask})["points"]
        pt = phys[..., j] * mask.to(x.dtype)
        pt = pt / pt.sum(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        phys = torch.cat([phys[..., :j], pt.unsqueeze(-1), phys[..., j + 1 :]], dim=-1)
        back = self._transforms({"points": phys, "mask": mask})["points"]
        return torch.cat([x[..., :j], back[..., j : j + 1], x[..., j + 1 :]], dim=-1)


def deeptree_plan(config, store) -> DataPlan:
    """Jets: eta and phi standardised, ``ptrel`` Box-Cox'ed (maximum-likelihood exponent) then
    standardised, the conditioning fields standardised (``datasets/jetnet/scaler.py``). Showers:
    MDMA's shower plan (logit-dequantised cells, Box-Cox energies) and finishing step."""
    if store.kind == "showers":
        return shower_plan(config, store, "deeptree")
    if PT_FEATURE not in store.point_features:
        return standard_plan(config, store)
    from pcdata.loaders import BoxCox, Standardize

    return DataPlan(None, (BoxCox([PT_FEATURE]), Standardize(list(store.point_features) + list(config.data.cond_fields))))


def _build(config, data: DataSpec) -> DeepTreeMethod:
    n, m = config.network, config.method
    gen = n.generator_config(data)
    if gen.points < data.max_points:
        raise ConfigError(f"network.branches: the tree {list(n.branches)} makes {gen.points} points, but the data has "
                          f"clouds of up to {data.max_points}; branch more (or cut the clouds with data.pad)")
    return DeepTreeMethod(DeepTreeGenerator(gen), DeepTreeCritic(n.critic_config(data)), data, loss="hinge",
                          critic_steps=m.critic_steps, mean_field_steps=None if m.feature_matching > 0 else 0,
                          critic_limit=m.critic_limit, matching="levels", matching_weight=m.feature_matching,
                          pt_sum_one=m.pt_sum_one)


_GEN = OptimConfig(name="adam", lr=1e-5, betas=(0.9, 0.999), weight_decay=1e-4, schedule="constant", warmup_steps=0)
_CRITIC = OptimConfig(name="adam", lr=3e-5, betas=(0.9, 0.999), weight_decay=1e-4, schedule="constant", warmup_steps=0)

register(ModelSpec(
    name="deeptree", kinds=("jets", "showers"), networks=("generator", "critic"), optimised=("critic", "generator"),
    method=_build, network_config=DeepTreeSection, method_config=DeepTreeMethodSection,
    optim_defaults={"generator": _GEN, "critic": _CRITIC}, samplers=AdversarialMethod.samplers,
    configs={"default": "deeptree-top150.yaml", "tiny": "deeptree-tiny.yaml", "small": "deeptree-small.yaml",
             "top30": "deeptree-top30.yaml", "top150": "deeptree-top150.yaml", "ds2": "deeptree-ds2.yaml",
             "small-showers": "deeptree-showers-small.yaml", "tiny-showers": "deeptree-showers-tiny.yaml"},
    description="tree-growing GAN with a tree critic (Scham et al. 2023)", data_plan=deeptree_plan))
