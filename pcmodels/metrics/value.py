"""A metric's value with its uncertainty and the factor the field reports it with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MetricValue", "metric_value"]


@dataclass(frozen=True)
class MetricValue:
    """A metric with its uncertainty, raw, and the factor the field reports it with.

    Attributes:
        value: the raw value (W1: mean over batches; FPD: the infinite-sample extrapolation;
            KPD: the median over batches; KL: the bootstrap mean).
        error: its uncertainty (std over batches, fit error, half the 68% spread, bootstrap std).
        scale: the reporting factor: ``value * scale`` is the number usually quoted (W1M 0.64 at
            scale 1e3 reads "0.64 x1e-3").
        components: per-feature raw ``(value, error)`` where the metric combines several.
    """

    value: float
    error: float
    scale: float = 1.0
    components: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def scaled(self) -> tuple[float, float]:
        """``(value, error)`` in reported units."""
        return self.value * self.scale, self.error * self.scale

    def to_dict(self) -> dict:
        """JSON form: ``value``/``error`` in reported units (raw x ``scale``), the raw pair under ``raw``."""
        s = self.scale
        out = {
            "value": self.value * s,
            "error": self.error * s,
            "scale": s,
            "raw": {"value": self.value, "error": self.error},
        }
        if self.components:
            out["components"] = {k: {"value": v * s, "error": e * s} for k, (v, e) in self.components.items()}
        return out

    def __str__(self) -> str:
        exponent = round(math.log10(self.scale)) if self.scale > 0 else 0
        unit = f" x1e-{exponent}" if exponent else ""
        value, error = self.scaled
        return f"{value:.3g} +- {error:.2g}{unit}"


def metric_value(value, error, scale: float, names=None) -> MetricValue:
    """A :class:`MetricValue` from a scalar pair, or from per-feature arrays combined into one.

    Several features give the usual single number: the mean over features of the values, with the
    mean of their errors as its uncertainty (the features' errors are correlated, so not summed in
    quadrature); the features themselves go to ``components``.
    """
    value, error = np.asarray(value, dtype=np.float64), np.asarray(error, dtype=np.float64)
    if value.ndim == 0:
        return MetricValue(float(value), float(error), scale)
    names = names or [f"{i}" for i in range(len(value))]
    return MetricValue(float(value.mean()), float(error.mean()), scale,
                       {n: (float(v), float(e)) for n, v, e in zip(names, value, error)})
