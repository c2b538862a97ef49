"""Real-vs-generated histograms with a ratio panel, one figure per group of features.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot): no global state, no
interactive backend, so plotting works in worker processes and headless machines alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["feature_edges", "plot_comparison"]


def feature_edges(*samples: np.ndarray, bins: int = 40, log: bool = False) -> np.ndarray:
    """Bin edges spanning the 0.001-0.999 quantiles of every sample (log-spaced for ``log``), so
    a generated sample off the real range still shows; integer-valued features get bins of a whole
    number of integers (one each when the range is small)."""
    parts = [np.asarray(x, np.float64) for x in samples]
    parts = [x[np.isfinite(x) & (x > 0 if log else True)] for x in parts]
    parts = [x for x in parts if len(x)]
    if not parts:
        return np.geomspace(1e-3, 1.0, bins + 1) if log else np.linspace(0.0, 1.0, bins + 1)
    quantiles = np.array([np.quantile(x, (0.001, 0.999)) for x in parts])
    lo, hi = quantiles[:, 0].min(), quantiles[:, 1].max()
    if all(np.all(x == np.round(x)) for x in parts):
        # Integer-aligned bins of a whole number of integers each: no bin holds one more value
        # than its neighbour (which would draw a comb).
        width = max(1, int(np.ceil((hi - lo + 1) / bins)))
        return np.arange(np.floor(lo), np.ceil(hi) + width + 1, width) - 0.5
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)


def _density(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts, _ = np.histogram(values, edges)
    norm = max(len(values), 1) * np.diff(edges)  # normalised to the whole sample, overflow included
    return counts / norm, np.sqrt(counts) / norm


def plot_comparison(real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray], path: str | os.PathLike, *,
                    labels: Mapping[str, str] | None = None, log_x: tuple[str, ...] = (), log_y: tuple[str, ...] = (),
                    title: str | None = None, names: tuple[str, str] = ("real", "generated")) -> Path:
    """One row of histograms (density, statistical error bars) with the generated/real ratio below.

    Args:
        real, generated: feature name -> 1-d values; one column per feature of ``real``.
        path: the PNG to write.
        labels: axis label per feature (default: the name).
        log_x, log_y: features drawn with log-spaced bins / a log y axis.
        title: the figure title.
        names: legend names of the two samples.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    labels = dict(labels or {})
    features = list(real)
    fig = Figure(figsize=(4.2 * len(features), 4.6), layout="constrained")
    grid = fig.add_gridspec(2, len(features), height_ratios=(3, 1))
    for j, name in enumerate(features):
        top = fig.add_subplot(grid[0, j])
        bottom = fig.add_subplot(grid[1, j], sharex=top)
        r, g = np.asarray(real[name], np.float64), np.asarray(generated[name], np.float64)
        edges = feature_edges(r, g, log=name in log_x)
        hr, er = _density(r, edges)
        hg, eg = _density(g, edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        top.stairs(hr, edges, fill=True, alpha=0.35, color="tab:blue", label=f"{names[0]} ({len(r)})")
        top.stairs(hg, edges, color="tab:red", linewidth=1.5, label=f"{names[1]} ({len(g)})")
        top.errorbar(centres, hg, yerr=eg, fmt="none", ecolor="tab:red", elinewidth=0.8)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(hr > 0, hg / hr, np.nan)
            ratio_err = np.where(hr > 0, ratio * np.sqrt((eg / np.where(hg > 0, hg, 1)) ** 2 + (er / hr) ** 2), np.nan)
        bottom.axhline(1.0, color="tab:blue", linewidth=0.8)
        bottom.errorbar(centres, ratio, yerr=ratio_err, fmt="o", markersize=2.5, color="tab:red", elinewidth=0.8)
        bottom.set_ylim(0.5, 1.5)
        bottom.set_ylabel(f"{names[1]}/{names[0]}")
        bottom.set_xlabel(labels.get(name, name))
        top.set_ylabel("density")
        if name in log_x:
            top.set_xscale("log")
        if name in log_y:
            top.set_yscale("log")
        top.tick_params(labelbottom=False)
        top.legend(fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
