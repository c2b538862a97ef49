"""CaloPointFlow II on calorimeter showers (Schnake, Krücker, Borras, arXiv 2403.15782).

Defaults are the paper's ds2/ds3 settings (``simonschnake/CaloPointFlow`` ``d2_II.yaml``,
``d3_II.yaml``, ``base.yaml``; seed-models.md §3.1): a 128-dim latent, condition flow 12 x 12 bins
x 128^3, latent flow 8 x 8 bins x 1024^3, point flow 12 x 8 bins x 128^3 with DeepSets
64-128-512 / 512-256-128; AdamW lr 1e-3 with a cosine schedule over the run; batch 256 (ds2) or
64 (ds3); no EMA (the reference keeps none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..config import OptimConfig
from ..data import pointflow_plan
from ..methods.base import DataSpec
from ..methods.pointflow import PointFlowMethod
from ..networks.pointflow import CaloPointFlowNet, PointFlowConfig
from ..registry import ModelSpec, register

__all__ = ["CaloPointFlowSection", "PointFlowMethodSection"]


@dataclass(frozen=True)
class CaloPointFlowSection(PointFlowConfig):
    """The ``network`` section: the sizes of :class:`~pcmodels.networks.pointflow.PointFlowConfig`;
    the point and condition dimensions are not settings (they come from the data)."""

    point_dim: int = field(default=3, init=False)
    cond_dim: int = field(default=3, init=False)

    def network_config(self, point_dim: int, cond_dim: int) -> PointFlowConfig:
        sizes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return PointFlowConfig(point_dim=point_dim, cond_dim=cond_dim, **sizes)


@dataclass(frozen=True)
class PointFlowMethodSection:
    """The ``method`` section (the loss has no settings)."""


def _build(config, data: DataSpec) -> PointFlowMethod:
    return PointFlowMethod(CaloPointFlowNet(config.network.network_config(data.features, len(data.cond_fields))), data,
                           max_points=config.data.max_points)


register(ModelSpec(
    name="calopointflow", kinds=("showers",), networks=("flow",), optimised=("flow",), method=_build,
    network_config=CaloPointFlowSection, method_config=PointFlowMethodSection,
    optim_defaults={"flow": OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01)}, samplers=PointFlowMethod.samplers,
    configs={"default": "calopointflow-ds2.yaml", "tiny": "calopointflow-tiny.yaml", "small": "calopointflow-small.yaml",
             "ds2": "calopointflow-ds2.yaml", "ds3": "calopointflow-ds3.yaml"},
    description="CaloPointFlow II: shower latent + DeepSet-conditioned point flow (Schnake et al. 2024)",
    data_plan=pointflow_plan))
