"""MDMA for jets and showers: mean-field attention generator and critic (seed-models.md §1).

Defaults are the paper's JetNet150 settings (``kaechb/MDMA`` ``default_jet.yaml@NeurIPS``):
generator latent 16, hidden 48, 7 blocks, 16 heads; critic latent 16, hidden 64, 2 blocks, 16
heads; LSGAN with one generator step per critic step; mean-field loss for the first 50k steps;
Adam betas (0, 0.999), eps 1e-14, lr 1e-4, 2k-step linear warm-up then cosine; batch 128; no EMA.
On showers (``mdma-ds2.yaml``, ``default_calo.yaml@NeurIPS``): generator 16/128/4 blocks/16 heads,
critic 16/128/3 blocks/8 heads, GLU gating on the log incident energy, WGAN with gradient penalty,
3 critic steps per generator step, batch 128, bucketed by hit count; the data plan
(:func:`pcmodels.data.mdma_shower_plan`) gives logit-dequantised cells and Box-Cox energies.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import OptimConfig
from ..data import mdma_shower_plan
from ..methods.base import DataSpec
from ..methods.gan import AdversarialMethod, GanLoss
from ..networks.mdma import MDMAConfig, MDMACritic, MDMAGenerator
from ..registry import ModelSpec, register

__all__ = ["MDMASection", "MDMAMethodSection"]


@dataclass(frozen=True)
class MDMASection:
    """The ``network`` section: generator and critic sizes (features, conditions and the mean
    multiplicity come from the data)."""

    gen_latent: int = 16
    gen_hidden: int = 48
    gen_layers: int = 7
    gen_heads: int = 16
    critic_latent: int = 16
    critic_hidden: int = 64
    critic_layers: int = 2
    critic_heads: int = 16
    dropout: float = 0.0
    glu: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        probe = DataSpec(("x",), ("c",) if self.glu else (), 1, 1.0, (0.0,), (1.0,))
        self.generator_config(probe), self.critic_config(probe)  # sizes checked now, with their keys

    def _config(self, data: DataSpec, prefix: str) -> MDMAConfig:
        size = {k: getattr(self, prefix + k) for k in ("latent", "hidden", "layers", "heads")}
        try:
            return MDMAConfig(features=data.features, cond=len(data.cond_fields) + 1, mean_points=data.mean_points,
                              glu=self.glu, dropout=self.dropout, **size)
        except ValueError as err:  # name the section's key, not the network's
            key, _, rest = str(err).partition(": ")
            raise ValueError(f"{key if key in ('glu', 'dropout') else prefix + key}: {rest}") from None

    def generator_config(self, data: DataSpec) -> MDMAConfig:
        return self._config(data, "gen_")

    def critic_config(self, data: DataSpec) -> MDMAConfig:
        return self._config(data, "critic_")


@dataclass(frozen=True)
class MDMAMethodSection:
    """The ``method`` section: the GAN's loss and schedule of updates."""

    loss: GanLoss = "lsgan"
    critic_steps: int = 1
    mean_field_steps: int = 50_000
    critic_limit: float = 1e4
    gradient_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.gradient_penalty < 0:
            raise ValueError(f"gradient_penalty: must be >= 0, got {self.gradient_penalty}")
        if self.critic_steps < 1:
            raise ValueError(f"critic_steps: must be >= 1, got {self.critic_steps}")
        if self.mean_field_steps < 0:
            raise ValueError(f"mean_field_steps: must be >= 0, got {self.mean_field_steps}")
        if self.critic_limit <= 0:
            raise ValueError(f"critic_limit: must be > 0, got {self.critic_limit}")


def _build(config, data: DataSpec) -> AdversarialMethod:
    n, m = config.network, config.method
    return AdversarialMethod(MDMAGenerator(n.generator_config(data)), MDMACritic(n.critic_config(data)), data,
                             loss=m.loss, critic_steps=m.critic_steps, mean_field_steps=m.mean_field_steps,
                             critic_limit=m.critic_limit, gradient_penalty=m.gradient_penalty)


_ADAM = OptimConfig(name="adam", lr=1e-4, betas=(0.0, 0.999), eps=1e-14, schedule="cosine", warmup_steps=2000)

register(ModelSpec(
    name="mdma", kinds=("jets", "showers"), networks=("generator", "critic"), optimised=("critic", "generator"),
    method=_build, network_config=MDMASection, method_config=MDMAMethodSection,
    optim_defaults={"generator": _ADAM, "critic": _ADAM}, samplers=AdversarialMethod.samplers,
    configs={"default": "mdma-top150.yaml", "tiny": "mdma-tiny.yaml", "small": "mdma-small.yaml", "top30": "mdma-top30.yaml",
             "top150": "mdma-top150.yaml", "ds2": "mdma-ds2.yaml", "ds3": "mdma-ds3.yaml",
             "small-showers": "mdma-showers-small.yaml", "tiny-showers": "mdma-showers-tiny.yaml"},
    description="mean-field attention GAN (Käch & Melzer-Pellmann 2023)", data_plan=mdma_shower_plan))
