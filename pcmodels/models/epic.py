"""EPiC-FM (flow matching) and EPiC-JeDi (VP diffusion): one EPiC network, two objectives.

Defaults are the EPiC-FM paper's (FACTS.md): hidden 128, latent 10, 6 layers, a 32-dim cosine
time embedding, features scaled to std 5, AdamW lr 1e-3 (EPiC-JeDi 1e-4) with gradient clipping at
0.5, EMA 0.999, midpoint 100 steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import OptimConfig
from ..methods.base import DataSpec
from ..methods.diffusion import VPDiffusion
from ..methods.field import FieldMethod
from ..methods.flow_matching import FlowMatching
from ..networks.epic import EPiCConfig, EPiCNetwork
from ..registry import ModelSpec, register

__all__ = ["EPiCSection", "FlowMatchingSection", "DiffusionSection"]


@dataclass(frozen=True)
class EPiCSection:
    """The ``network`` section: sizes of the EPiC network (features and conditions come from the data)."""

    hidden: int = 128
    latent: int = 10
    layers: int = 6
    time_dim: int = 32

    def build(self, data: DataSpec) -> EPiCNetwork:
        return EPiCNetwork(EPiCConfig(features=data.features, cond=len(data.cond_fields), hidden=self.hidden,
                                      latent=self.latent, layers=self.layers, time_dim=self.time_dim))

    def __post_init__(self) -> None:  # fails early, with the key, rather than at build time
        EPiCConfig(hidden=self.hidden, latent=self.latent, layers=self.layers, time_dim=self.time_dim)


@dataclass(frozen=True)
class FlowMatchingSection:
    """The ``method`` section of EPiC-FM."""

    sigma_min: float = 1e-4
    feature_scale: float = 5.0

    def __post_init__(self) -> None:
        FlowMatching(self.sigma_min)
        if self.feature_scale <= 0:
            raise ValueError(f"feature_scale: must be > 0, got {self.feature_scale}")


@dataclass(frozen=True)
class DiffusionSection:
    """The ``method`` section of EPiC-JeDi (the VP-SDE schedule)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    prediction: Literal["eps", "v"] = "eps"
    feature_scale: float = 5.0

    def __post_init__(self) -> None:
        VPDiffusion(self.beta_min, self.beta_max, self.t_min, self.prediction)
        if self.feature_scale <= 0:
            raise ValueError(f"feature_scale: must be > 0, got {self.feature_scale}")


#: Samplers, the default first.
FM_SAMPLERS = ("midpoint", "euler", "rk4")
JEDI_SAMPLERS = ("ddpm", "ddim", "euler", "midpoint", "rk4")


def _field(objective, samplers: tuple[str, ...], config, data: DataSpec) -> FieldMethod:
    return FieldMethod(objective, config.network.build, data, feature_scale=config.method.feature_scale,
                       samplers=samplers, default_sampler=config.sampling.sampler or samplers[0],
                       default_steps=config.sampling.steps or 100)


def _flow_matching(config, data: DataSpec) -> FieldMethod:
    return _field(FlowMatching(config.method.sigma_min), FM_SAMPLERS, config, data)


def _diffusion(config, data: DataSpec) -> FieldMethod:
    m = config.method
    return _field(VPDiffusion(m.beta_min, m.beta_max, m.t_min, m.prediction), JEDI_SAMPLERS, config, data)


register(ModelSpec(
    name="epic-fm", kinds=("jets",), networks=("net",), optimised=("net",), method=_flow_matching,
    network_config=EPiCSection, method_config=FlowMatchingSection,
    optim_defaults={"net": OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-5, warmup_steps=100, grad_clip=0.5)},
    samplers=FM_SAMPLERS,
    configs={"default": "epic-fm.yaml", "tiny": "epic-fm-tiny.yaml", "small": "epic-fm-small.yaml"},
    description="EPiC network, conditional flow matching (Buhmann et al. 2023)"))

register(ModelSpec(
    name="epic-jedi", kinds=("jets",), networks=("net",), optimised=("net",), method=_diffusion,
    network_config=EPiCSection, method_config=DiffusionSection,
    optim_defaults={"net": OptimConfig(name="adamw", lr=1e-4, weight_decay=1e-5, warmup_steps=100, grad_clip=0.5)},
    samplers=JEDI_SAMPLERS,
    configs={"default": "epic-jedi.yaml", "tiny": "epic-jedi-tiny.yaml", "small": "epic-jedi-small.yaml"},
    description="EPiC network, VP score-based diffusion (PC-JeDi / EPiC-JeDi)"))
