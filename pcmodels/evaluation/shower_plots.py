"""Figures of a shower evaluation, in the CaloChallenge's manner (mplhep style, PDF and PNG).

- :func:`plot_average_shower`: the mean shower in a few layers (real, generated, ratio), drawn
  on the layers' own (angle, radius) bins.
- :func:`plot_profiles`: mean energy per layer and per radial bin, with ratio panels.
- :func:`plot_histograms`: the evaluation's own density histograms (the binning the separation
  power used) with ratio panels, one panel per layer or feature, separation power in the title.
- :func:`plot_separation_by_layer`: separation power per layer of every feature beside the
  real-vs-real floor: the figure to read first.
- :func:`plot_classifier`: the calibrated classifier outputs on real and generated showers.

Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pcdata.geometry.calo import get_geometry

__all__ = ["plot_average_shower", "plot_profiles", "plot_histograms", "plot_separation_by_layer",
           "plot_classifier"]

REAL, GEN = "tab:blue", "tab:red"


@contextlib.contextmanager
def _style():
    import matplotlib as mpl

    try:
        import mplhep

        with mpl.style.context(mplhep.style.ROOT):
            with mpl.rc_context({"font.size": 11, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 8,
                                 "xtick.labelsize": 8, "ytick.labelsize": 8}):
                yield
    except ImportError:  # plain matplotlib style; the figures stay the same
        yield


def _save(fig, path: Path) -> list[Path]:
    fig.savefig(path.with_suffix(".pdf"))
    fig.savefig(path.with_suffix(".png"), dpi=120)
    return [path.with_suffix(".pdf"), path.with_suffix(".png")]


def _pick_layers(layers: Sequence[int], k: int) -> list[int]:
    idx = np.unique(np.linspace(0, len(layers) - 1, min(k, len(layers))).round().astype(int))
    return [layers[i] for i in idx]


def plot_average_shower(real_mean: np.ndarray, gen_mean: np.ndarray, geometry: str, path: Path,
                        *, num_layers: int = 6) -> list[Path]:
    """Mean voxel energies of a few layers: real, generated and generated/real, on polar axes."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    geo = get_geometry(geometry)
    layers = _pick_layers(geo.active_layers, num_layers)
    with _style():
        fig = Figure(figsize=(2.6 * len(layers), 7.6), layout="constrained")
        vmax = max(float(real_mean.max()), 1e-6)
        for j, layer in enumerate(layers):
            lo, hi = geo.layer_offsets[layer], geo.layer_offsets[layer + 1]
            shape = (geo.n_alpha[layer], geo.n_r[layer])
            a_e, r_e = geo.alpha_edges_of(layer), geo.r_edges_of(layer)
            r_plot = np.log1p(r_e)  # the inner bins are the ones that matter: compress the outside
            rows = (("real", real_mean[lo:hi].reshape(shape)), ("generated", gen_mean[lo:hi].reshape(shape)))
            for i, (name, img) in enumerate(rows):
                ax = fig.add_subplot(3, len(layers), i * len(layers) + j + 1, projection="polar")
                mesh = ax.pcolormesh(a_e, r_plot, img.T + 1e-12, norm=LogNorm(vmin=vmax * 1e-5, vmax=vmax),
                                     cmap="viridis")
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_title(f"{name}, layer {layer}")
            ax = fig.add_subplot(3, len(layers), 2 * len(layers) + j + 1, projection="polar")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(rows[0][1] > 0, rows[1][1] / rows[0][1], np.nan)
            ratio_mesh = ax.pcolormesh(a_e, r_plot, ratio.T, vmin=0.5, vmax=1.5, cmap="RdBu_r")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"generated/real, layer {layer}")
        fig.colorbar(mesh, ax=fig.axes[:-1], shrink=0.5, label="mean energy [MeV]")
        fig.colorbar(ratio_mesh, ax=fig.axes[-1], shrink=0.8, label="ratio")
        fig.suptitle(f"average shower ({geo.name}; radius on a log(1 + r/mm) scale)")
        return _save(fig, path)


def _ratio_panel(ax, centres, h_real, h_gen, label):
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h_real > 0, h_gen / h_real, np.nan)
    ax.axhline(1.0, color=REAL, linewidth=0.8)
    ax.plot(centres, ratio, "o", markersize=2.5, color=GEN)
    ax.set_ylim(0.5, 1.5)
    ax.set_ylabel("gen./real")
    ax.set_xlabel(label)


def plot_profiles(real_mean: np.ndarray, gen_mean: np.ndarray, geometry: str, path: Path) -> list[Path]:
    """Mean energy per layer and per radial bin (summed over angles and layers), with ratios."""
    from matplotlib.figure import Figure

    geo = get_geometry(geometry)
    layers = np.asarray(geo.active_layers)
    per_layer = [np.array([m[geo.layer_offsets[l]:geo.layer_offsets[l + 1]].sum() for l in layers])
                 for m in (real_mean, gen_mean)]
    n_r = int(geo.n_r.max())
    per_r = [np.bincount(geo.voxel_r, weights=m, minlength=n_r) for m in (real_mean, gen_mean)]
    with _style():
        fig = Figure(figsize=(9, 4.6), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=(3, 1))
        for j, (x, (hr, hg), label) in enumerate(((layers, per_layer, "layer"), (np.arange(n_r), per_r, "radial bin"))):
            top, bottom = fig.add_subplot(grid[0, j]), fig.add_subplot(grid[1, j])
            top.step(x, hr, where="mid", color=REAL, label="real")
            top.step(x, hg, where="mid", color=GEN, label="generated")
            top.set_yscale("log")
            top.set_ylabel("mean energy per shower [MeV]")
            top.legend(frameon=False)
            top.tick_params(labelbottom=False)
            _ratio_panel(bottom, x, hr, hg, label)
        fig.suptitle(f"shower profiles ({geo.name})")
        return _save(fig, path)


def plot_histograms(seps: Mapping[str, dict], labels: Sequence[str], path: Path, *, title: str,
                    log_x: bool = False, xlabel: str = "") -> list[Path]:
    """The evaluation's density histograms of ``labels`` (keys of ``seps``), with ratio panels."""
    from matplotlib.figure import Figure

    labels = [l for l in labels if l in seps and seps[l]["edges"] is not None]
    if not labels:
        return []
    cols = min(len(labels), 5)
    rows = int(np.ceil(len(labels) / cols))
    with _style():
        # A fixed layout: the constrained solver costs seconds per figure of this many axes.
        fig = Figure(figsize=(3.2 * cols, 3.6 * rows))
        grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1] * rows, left=0.06, right=0.98,
                                bottom=0.1 / rows, top=1 - 0.16 / rows, wspace=0.35, hspace=0.12)
        for k, label in enumerate(labels):
            entry = seps[label]
            edges, hr, hg = entry["edges"], entry["reference"], entry["generated"]
            i, j = divmod(k, cols)
            top, bottom = fig.add_subplot(grid[2 * i, j]), fig.add_subplot(grid[2 * i + 1, j])
            top.stairs(np.nan_to_num(hr), edges, fill=True, alpha=0.35, color=REAL, label="real")
            top.stairs(np.nan_to_num(hg), edges, color=GEN, linewidth=1.2, label="generated")
            if (np.nan_to_num(hr) > 0).any() or (np.nan_to_num(hg) > 0).any():
                top.set_yscale("log")  # an all-empty histogram (a layer a model never fills) stays linear
            value = entry["value"]
            top.set_title(f"{label}\nsep. power {value:.2g}" if np.isfinite(value) else f"{label}\nsep. power n/a")
            top.tick_params(labelbottom=False)
            if k == 0:
                top.legend(frameon=False)
            _ratio_panel(bottom, 0.5 * (edges[1:] + edges[:-1]), hr, hg, xlabel)
            if log_x:
                top.set_xscale("log"), bottom.set_xscale("log")
                # Limits from the bins: a panel with nothing drawn (an empty ratio) has none of its own.
                top.set_xlim(edges[0], edges[-1]), bottom.set_xlim(edges[0], edges[-1])
        fig.suptitle(title)
        return _save(fig, path)


def plot_separation_by_layer(seps: Mapping[str, float], floor: Mapping[str, float], layers: Sequence[int],
                             path: Path, *, families: Sequence[str]) -> list[Path]:
    """Separation power per layer for each feature family (``E layer``, ``EC Eta``, ...), beside the
    real-vs-real floor."""
    from matplotlib.figure import Figure

    cols = min(len(families), 3)
    rows = int(np.ceil(len(families) / cols))
    with _style():
        fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
        for k, family in enumerate(families):
            ax = fig.add_subplot(rows, cols, k + 1)
            xs = [l for l in layers if f"{family} layer {l}" in seps]
            positive = False
            for values, color, name in ((seps, GEN, "generated vs real"), (floor, REAL, "real vs real (floor)")):
                ys = np.array([values.get(f"{family} layer {l}") for l in xs], dtype=float)
                positive |= bool((ys > 0).any())
                ax.plot(xs, np.where(ys > 0, ys, np.nan), "o-", markersize=3, color=color, label=name)
            if positive:
                ax.set_yscale("log")
            ax.set_title(family)
            ax.set_xlabel("layer")
            ax.set_ylabel("separation power")
            if k == 0:
                ax.legend(frameon=False)
        fig.suptitle("separation power per layer")
        return _save(fig, path)


def plot_classifier(results: Mapping[str, object], path: Path) -> list[Path]:
    """Calibrated classifier outputs (probability of 'real') on the validation showers."""
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=(4.4 * len(results), 3.8), layout="constrained")
        edges = np.linspace(0, 1, 41)
        for k, (name, res) in enumerate(results.items()):
            ax = fig.add_subplot(1, len(results), k + 1)
            p, y = res.probabilities, res.labels
            ax.hist(p[y == 1], edges, histtype="stepfilled", alpha=0.35, color=REAL, label="real")
            ax.hist(p[y == 0], edges, histtype="step", color=GEN, label="generated")
            ax.set_title(f"{name}: AUC {res.auc:.3f}, JSD {res.jsd:.3f}")
            ax.set_xlabel("calibrated classifier output")
            ax.set_ylabel("showers")
            ax.legend(frameon=False)
        return _save(fig, path)
