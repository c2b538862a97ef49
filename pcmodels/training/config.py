"""Training configuration: one frozen dataclass, loadable from YAML, saved resolved in the run."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from pcdata._io import read_yaml_mapping

from ..errors import ConfigError

__all__ = ["TrainConfig", "load_config", "MODELS"]

MODELS = ("epic-fm", "epic-jedi")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (defaults: EPiC-FM as published, top30 jets).

    Network: ``hidden``, ``latent``, ``layers``, ``time_dim``. Optimisation: AdamW with ``lr``
    (default 1e-3 for epic-fm, 1e-4 for epic-jedi), linear warm-up for ``warmup_steps`` then cosine
    decay to zero, gradient clipping at ``grad_clip``, EMA weights with decay ``ema``. Length:
    ``steps`` or ``epochs`` (one of them). Data: point features standardised then scaled to std
    ``feature_scale``; ``cond_fields`` standardised and given to every layer; ``pad`` as the loader's.
    """

    model: Literal["epic-fm", "epic-jedi"] = "epic-fm"
    hidden: int = 128
    latent: int = 10
    layers: int = 6
    time_dim: int = 32
    batch_size: int = 1024
    lr: float | None = None
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    epochs: int | None = None
    steps: int | None = None
    grad_clip: float = 0.5
    ema: float = 0.999
    feature_scale: float = 5.0
    cond_fields: tuple[str, ...] = ("pt", "mass", "num_particles")
    pad: int | Literal["batch"] = "batch"
    num_workers: int = 0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    val_batches: int = 20
    amp: bool = True
    solver: str | None = None
    sample_steps: int = 100

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("give exactly one of epochs and steps")
        for name in ("batch_size", "hidden", "latent", "layers", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if (self.epochs or 1) < 1 or (self.steps or 1) < 1:
            raise ConfigError("epochs and steps must be >= 1")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.model == "epic-fm" else 1e-4)

    @property
    def sampler(self) -> str:
        return self.solver or ("midpoint" if self.model == "epic-fm" else "ddim")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cond_fields"] = list(self.cond_fields)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        d = dict(d)
        if "cond_fields" in d:
            d["cond_fields"] = tuple(d["cond_fields"] or ())
        try:
            return cls(**d)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from err


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the YAML file, then the non-None overrides (what the CLI passes).

    ``epochs`` and ``steps`` replace each other: giving one clears the other.
    """
    d: dict[str, Any] = {}
    if path is not None:
        d = dict(read_yaml_mapping(path, what="config file", error=ConfigError, allow_empty=True))
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in given:
        d.pop("steps", None)
    if "steps" in given:
        d.pop("epochs", None)
    d.update(given)
    if d.get("epochs") is None and d.get("steps") is None:
        d["epochs"] = 1
    return TrainConfig.from_dict(d, where=str(path) if path else "config")
