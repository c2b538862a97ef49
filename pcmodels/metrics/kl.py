"""The binned KL-divergence metric of the EPiC-FM paper, on per-jet (or any per-cloud) features.

For each feature: 30 bins evenly spaced between the 0.001 and 0.999 quantiles of the reference
(real) sample, both histograms normalised, 1e-8 added to every bin of both (so an empty bin gives
a large but finite contribution), the KL divergence in both directions, and a bootstrap (both
samples resampled with replacement, the binning kept) for its mean and standard deviation.

Two choices the paper's description leaves open, made here: values outside the binned range are
counted in the outermost bins (so a generated sample outside the reference's range is penalised
rather than ignored), and the histograms are renormalised after adding the 1e-8.

The bootstrap mean is the quantity reported: it is biased upwards by the finite samples, which is
why an evaluation sets it beside the same number for two halves of the real data (the floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .value import MetricValue

__all__ = ["KLResult", "histogram_edges", "kl_divergence", "kl_metric", "KL_SCALE"]

#: Reporting factor of the KL metric (this project's choice: floors come out at a few x1e-3).
KL_SCALE = 1e3


@dataclass(frozen=True)
class KLResult:
    """Binned KL divergences of several features, with bootstrap uncertainties.

    Attributes:
        names: the features.
        forward, forward_std: ``KL(real || generated)`` per feature, bootstrap mean and std.
        reverse, reverse_std: ``KL(generated || real)`` per feature.
        symmetric, symmetric_std: the mean over features of ``(forward + reverse) / 2``, taken per
            bootstrap replicate (features share the resampled clouds), then its mean and std.
        edges: the bin edges of each feature (from the reference sample).
    """

    names: tuple[str, ...]
    forward: np.ndarray
    forward_std: np.ndarray
    reverse: np.ndarray
    reverse_std: np.ndarray
    symmetric: float
    symmetric_std: float
    edges: tuple[np.ndarray, ...]


def histogram_edges(reference: np.ndarray, bins: int = 30, quantiles: tuple[float, float] = (0.001, 0.999)) -> np.ndarray:
    """``bins + 1`` edges evenly spaced between two quantiles of ``reference`` (widened by 0.5 on
    each side when they coincide, e.g. for a constant feature)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, found {bins}")
    lo, hi = np.quantile(np.asarray(reference, np.float64), quantiles)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _probabilities(values: np.ndarray, edges: np.ndarray, eps: float) -> np.ndarray:
    # Overflow into the outermost bins: searchsorted on the inner edges gives 0..bins-1 directly.
    idx = np.searchsorted(edges[1:-1], values, side="right")
    counts = np.bincount(idx, minlength=len(edges) - 1).astype(np.float64)
    p = counts / max(counts.sum(), 1.0) + eps
    return p / p.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def _as_columns(x) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(x, Mapping):
        names = tuple(x)
        return np.stack([np.asarray(x[n], np.float64).reshape(-1) for n in names], axis=1), names
    a = np.asarray(x, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"expected a 1-d or 2-d [N, F] array or a dict of 1-d arrays, found shape {a.shape}")
    return a, tuple(f"f{i}" for i in range(a.shape[1]))


def kl_divergence(real, generated, *, bins: int = 30, quantiles: tuple[float, float] = (0.001, 0.999),
                  eps: float = 1e-8, num_bootstrap: int = 50, sample_size: int | None = None, seed: int = 0,
                  edges: list[np.ndarray] | None = None) -> KLResult:
    """Binned KL divergence in both directions, bootstrapped.

    Args:
        real: the reference: a 1-d array, an ``[N, F]`` array, or a dict of 1-d arrays.
        generated: the same layout (a dict needs the same keys), any N.
        bins, quantiles, eps: the binning (from ``real``) and the constant added to both histograms.
        num_bootstrap: bootstrap replicates; 0 gives the plain estimate with zero std.
        sample_size: entries drawn from each sample per replicate (default: each sample's size).
            The KL of finite samples grows as they shrink, so two comparisons are comparable only
            at equal sizes: an evaluation draws as many generated jets as its real-vs-real floor.
        seed: seeds the resampling.
        edges: fixed bin edges per feature instead of those from ``real`` (e.g. to swap the roles
            of the two samples on the same binning).

    Returns:
        :class:`KLResult`.
    """
    a, names = _as_columns(real)
    if isinstance(real, Mapping) and isinstance(generated, Mapping):
        missing = [n for n in names if n not in generated]
        if missing:
            raise KeyError(f"generated has no feature {missing[0]!r} (has {', '.join(generated)})")
        generated = {n: generated[n] for n in names}
    b, _ = _as_columns(generated)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"real has {a.shape[1]} features, generated {b.shape[1]}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need at least one entry")
    if edges is None:
        edges = [histogram_edges(a[:, j], bins, quantiles) for j in range(a.shape[1])]
    edges = [np.asarray(e, np.float64) for e in edges]

    def one(ia: np.ndarray | None, ib: np.ndarray | None) -> np.ndarray:
        out = np.empty((2, a.shape[1]))
        for j, e in enumerate(edges):
            p = _probabilities(a[:, j] if ia is None else a[ia, j], e, eps)
            q = _probabilities(b[:, j] if ib is None else b[ib, j], e, eps)
            out[:, j] = _kl(p, q), _kl(q, p)
        return out

    if num_bootstrap <= 0:
        reps = one(None, None)[None]
    else:
        rng = np.random.default_rng(seed)
        na, nb = (len(a), len(b)) if sample_size is None else (int(sample_size), int(sample_size))
        reps = np.stack([one(rng.integers(0, len(a), na), rng.integers(0, len(b), nb)) for _ in range(num_bootstrap)])
    symmetric = reps.mean(axis=1).mean(axis=1)  # per replicate: (fwd + rev) / 2, mean over features
    return KLResult(
        names=names,
        forward=reps[:, 0].mean(axis=0), forward_std=reps[:, 0].std(axis=0),
        reverse=reps[:, 1].mean(axis=0), reverse_std=reps[:, 1].std(axis=0),
        symmetric=float(symmetric.mean()), symmetric_std=float(symmetric.std()),
        edges=tuple(edges),
    )


def kl_metric(real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray], **kwargs) -> MetricValue:
    """:func:`kl_divergence` of several features as one :class:`~pcmodels.metrics.MetricValue`.

    The value is ``KLResult.symmetric`` (x1e3); ``components`` has ``<feature>/forward`` and
    ``<feature>/reverse`` for each feature. Keyword arguments go to :func:`kl_divergence`.
    """
    r = kl_divergence(real, generated, **kwargs)
    components = {}
    for j, name in enumerate(r.names):
        components[f"{name}/forward"] = (float(r.forward[j]), float(r.forward_std[j]))
        components[f"{name}/reverse"] = (float(r.reverse[j]), float(r.reverse_std[j]))
    return MetricValue(r.symmetric, r.symmetric_std, KL_SCALE, components)
