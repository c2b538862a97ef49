"""CaloPointFlow II on calorimeter showers (Schnake, Krücker, Borras, arXiv 2403.15782).

Defaults are the paper's ds2/ds3 settings (``simonschnake/CaloPointFlow`` ``d2_II.yaml``,
``d3_II.yaml``, ``base.yaml``; seed-models.md §3.1): a 128-dim latent, condition flow 12 x 12 bins
x 128^3, latent flow 8 x 8 bins x 1024^3, point flow 12 x 8 bins x 128^3 with DeepSets
64-128-512 / 512-256-128; AdamW lr 1e-3 with a cosine schedule over the run; batch 256 (ds2) or
64 (ds3); no EMA (the reference keeps none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import OptimConfig
from ..data import pointflow_plan
from ..methods.base import DataSpec
from ..methods.pointflow import PointFlowMethod
from ..networks.pointflow import CaloPointFlowNet, PointFlowConfig
from ..registry import ModelSpec, register

__all__ = ["CaloPointFlowSection", "PointFlowMethodSection"]


@dataclass(frozen=True)
class CaloPointFlowSection:
    """The ``network`` section: the sizes of :class:`~pcmodels.networks.pointflow.PointFlowConfig`
    (point and condition dimensions come from the data)."""

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
        self.network_config(3, 3)  # fails now, naming the key

    def network_config(self, point_dim: int, cond_dim: int) -> PointFlowConfig:
        return PointFlowConfig(point_dim=point_dim, cond_dim=cond_dim,
                               **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


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
