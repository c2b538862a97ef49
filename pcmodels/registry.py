"""The registry of models: one :class:`ModelSpec` per name, and nothing else spells a model name.

CLI choices, config validation, run loading and the list of samplers all read it. A family is one
package under :mod:`pcmodels.models` that calls :func:`register` for each of its models (and a
line in ``pcmodels/models/__init__.py`` that imports it); the conformance suite
(``tests/pcmodels/test_conformance.py``) then runs over it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["ModelSpec", "register", "get_model", "model_names", "all_models", "CONFIG_DIR"]

#: Where the shipped configs live; ``ModelSpec.configs`` names files in it.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class ModelSpec:
    """What the platform knows of a model.

    Attributes:
        name: the model's name (``--model``).
        kinds: data kinds it learns (``jets``, ``showers``).
        networks: names of its modules (``net``; ``generator``, ``critic``).
        optimised: the modules with an optimiser, in stepping order (keys of the ``optim`` section).
        method: the :class:`~pcmodels.methods.Method` class; ``method(config, data)`` builds it.
        network_config, method_config: frozen dataclasses of the ``network`` and ``method`` sections
            (their defaults are the paper settings).
        optim_defaults: the paper's optimiser settings per module.
        samplers: sampler names; ``samplers[0]`` is the default.
        configs: shipped configs by role (``tiny`` for tests is required, ``small`` for CPU, paper
            sizes), file names in :data:`CONFIG_DIR`.
        description: one line for ``pcmodels models``.
        data_plan: ``plan(config, store) -> DataPlan``: the features, transforms and finishing step
            of its data (:mod:`pcmodels.data`); None: every feature standardised (jets).
    """

    name: str
    kinds: tuple[str, ...]
    networks: tuple[str, ...]
    optimised: tuple[str, ...]
    method: Callable[..., Any]
    network_config: type
    method_config: type
    optim_defaults: dict[str, Any]
    samplers: tuple[str, ...]
    configs: dict[str, str] = field(default_factory=dict)
    description: str = ""
    data_plan: Callable[..., Any] | None = None

    def plan(self, config: Any, store: Any) -> Any:
        """The model's :class:`~pcmodels.data.DataPlan` for a store."""
        from .data import standard_plan

        return (self.data_plan or standard_plan)(config, store)

    def config_path(self, role: str) -> Path:
        if role not in self.configs:
            raise ConfigError(f"{self.name} has no {role!r} config (has {', '.join(self.configs)})")
        return CONFIG_DIR / self.configs[role]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kinds": list(self.kinds), "networks": list(self.networks),
                "optimised": list(self.optimised), "samplers": list(self.samplers),
                "configs": {k: str(Path("pcmodels/configs") / v) for k, v in self.configs.items()},
                "description": self.description}


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model; a second registration of the same name is a programming error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is registered twice")
    if "tiny" not in spec.configs:
        raise ValueError(f"model {spec.name!r} needs a 'tiny' config for the conformance suite")
    if not set(spec.optimised) <= set(spec.networks):
        raise ValueError(f"model {spec.name!r}: optimised modules must be among its networks")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> dict[str, ModelSpec]:
    from . import models  # noqa: F401  (importing the families registers them)

    return _REGISTRY


def get_model(name: str, *, where: str = "model") -> ModelSpec:
    """The spec of ``name``, or a :class:`ConfigError` listing the registered names."""
    reg = _load()
    if name not in reg:
        raise ConfigError(f"{where}: unknown model {name!r} (registered: {', '.join(reg)})")
    return reg[name]


def model_names() -> tuple[str, ...]:
    return tuple(_load())


def all_models() -> tuple[ModelSpec, ...]:
    return tuple(_load().values())
