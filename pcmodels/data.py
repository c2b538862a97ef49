"""What a model streams from a store: the point features it loads, the transforms fitted on the
training split (saved with the run, inverted at sampling) and how generated clouds are finished.

Each :class:`~pcmodels.registry.ModelSpec` names a plan function ``plan(config, store) ->
DataPlan``; jets default to standardising every point feature and conditioning field. The
transforms are bound by the loader to a fixed sample of the train split before the first step
(never online), and ``finish`` names a step of :mod:`pcmodels.sampling.showers` that turns the
inverse-transformed points into valid hits (cells in the grid, alpha, merged cells).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcdata.loaders import (BoxCox, CDFDequantize, Dequantize, EnergyFraction, Log, Logit, MinMax, ShowerConditions,
                            Standardize, Transform)

from .errors import ConfigError

__all__ = ["DataPlan", "standard_plan", "mdma_shower_plan", "shower_plan", "pointflow_plan", "SHOWER_CELLS", "POINTFLOW_FIELDS"]

#: The integer cell columns of a shower store.
SHOWER_CELLS = ("layer", "alpha_bin", "r_bin")
#: What CaloPointFlow II conditions on and models per shower, in this order.
POINTFLOW_FIELDS = ("incident_energy", "energy_sum", "num_points")


@dataclass(frozen=True)
class DataPlan:
    """Attributes:
        features: point features loaded, in order (None: every feature of the store).
        transforms: unbound transforms, in order (bound by the training loader).
        finish: the name of the finishing step of generated clouds (None: none).
    """

    features: tuple[str, ...] | None
    transforms: tuple[Transform, ...]
    finish: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"features": None if self.features is None else list(self.features), "finish": self.finish}


def standard_plan(config, store) -> DataPlan:
    """Every point feature and conditioning field standardised (the jet models)."""
    return DataPlan(None, (Standardize(list(store.point_features) + list(config.data.cond_fields)),))


def _need_showers(store, model: str) -> None:
    missing = [f for f in (*SHOWER_CELLS, "energy") if f not in store.point_features]
    if store.kind != "showers" or missing:
        raise ConfigError(f"{store.path}: {model} needs a shower store with point features layer, alpha_bin, r_bin, "
                          f"energy (found {store.kind}: {', '.join(store.point_features)})")


def mdma_shower_plan(config, store) -> DataPlan:
    """MDMA on showers (seed-models.md §1): cells dequantised, scaled onto [0, 1] and logit'ed,
    energies Box-Cox transformed, all standardised; conditioned on the standardised log E_inc."""
    if store.kind != "showers":
        return standard_plan(config, store)
    return shower_plan(config, store, "mdma")


def shower_plan(config, store, model: str) -> DataPlan:
    """The MDMA shower plan (:func:`mdma_shower_plan`) for ``model`` (named in its errors)."""
    _need_showers(store, model)
    if tuple(config.data.cond_fields) != ("incident_energy",):
        raise ConfigError(f"data.cond_fields: {model} on showers conditions on [incident_energy], "
                          f"got {list(config.data.cond_fields)}")
    cells = list(SHOWER_CELLS)
    return DataPlan(None, (Log(["incident_energy"]), Dequantize(cells), MinMax(cells), Logit(cells), BoxCox(["energy"]),
                           Standardize([*cells, "energy", "incident_energy"])), finish="mdma-showers")


def pointflow_plan(config, store) -> DataPlan:
    """CaloPointFlow II (seed-models.md §3): points ``(layer, r_bin, energy fraction)``, the cells
    through their empirical CDF to Gaussians, the fraction min-max scaled, logit'ed and
    standardised; the shower variables of :class:`~pcdata.loaders.ShowerConditions`."""
    _need_showers(store, "calopointflow")
    if tuple(config.data.cond_fields) != POINTFLOW_FIELDS:
        raise ConfigError(f"data.cond_fields: calopointflow needs {list(POINTFLOW_FIELDS)}, "
                          f"got {list(config.data.cond_fields)}")
    return DataPlan(("layer", "r_bin", "energy"),
                    (EnergyFraction("energy", "energy_sum"), MinMax(["energy"]), Logit(["energy"]),
                     Standardize(["energy"]), CDFDequantize(["layer", "r_bin"]), ShowerConditions()),
                    finish="calopointflow")
