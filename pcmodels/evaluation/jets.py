"""Evaluate generated jets against real ones: every metric, the real-vs-real floor, plots, a report.

:func:`evaluate` reads a split of a real store and a generated store (both pcdata stores of jets in
relative coordinates, point features etarel/phirel/ptrel), pads both to the real data's P and
computes W1M, W1P, W1EFP, FPD, KPD and KL twice: real vs generated, and between two disjoint halves
of the real sample. The second set is the floor: what a perfect generator would score with the same
number of jets, the yardstick for the first. Both use the same number of jets per draw, so they are
comparable with each other (not with published numbers, which use 50k jets).

Output directory::

    REPORT/metrics.json          every metric as {"value", "error", "scale", "raw", ...}, the floor,
                                 sample sizes, settings, published numbers for context
    REPORT/summary.txt           the text :func:`format_summary` gives
    REPORT/particle_features.png etarel, phirel, ptrel: real vs generated with ratio panels
    REPORT/jet_features.png      jet m/pT, pT/pT_jet, multiplicity: the same

Cost: the EFP features dominate (~650 jets/s per core at 30 particles, ~70-100 at 150), hence the
default of 5000 jets per sample.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pcdata import Clouds, open_store
from pcdata._io import write_json_atomic
from pcdata.sources.jetnet import clouds_to_jetnet

from ..errors import EvaluationError
from ..metrics import jets as jet_metrics
from ..metrics.jets import (JET_OBSERVABLES, PARTICLE_FEATURES, JetSample, MetricConfig, compare_jets,
                           informative_observables)
from ..metrics.plots import plot_comparison
from .floor import floor_halves, refuse_self_comparison

__all__ = ["DEFAULT_NUM", "METRICS", "REFERENCE", "EvaluationError", "evaluate", "format_summary"]

#: Jets per sample unless told otherwise (EFPs of 2 x 5000 jets take a minute or two on 2 cores).
DEFAULT_NUM = 5000
METRICS = ("w1m", "w1p", "w1efp", "fpd", "kpd", "kl")
REPORT_FORMAT, REPORT_VERSION = "pcmodels-evaluation", 1

#: Published numbers for context, in the report's units (W1M, W1P, FPD x1e3; W1EFP x1e5). All use
#: 50k real vs 50k generated top jets, so they compare with each other, not with a small evaluation.
REFERENCE = {
    "note": "published values, 50k real vs 50k generated top-quark jets; units as in this report "
            "(w1m, w1p, fpd x1e-3; w1efp x1e-5)",
    "top30": {
        "real vs real (PC-JeDi paper)": {"w1m": 0.32, "w1p": 0.40},
        "MPGAN": {"w1m": 0.64, "w1p": 2.17},
        "DeepTreeGAN": {"w1m": 0.62, "w1p": 1.15, "w1efp": 1.54},
    },
    "top150": {
        "DeepTreeGAN v2": {"w1m": 1.45, "w1p": 0.19, "fpd": 0.34},
        "MDMA": {"w1m": 0.48},
    },
}

_PARTICLE_LABELS = {"etarel": r"particle $\eta^{rel}$", "phirel": r"particle $\phi^{rel}$",
                    "ptrel": r"particle $p_T^{rel}$"}
_JET_LABELS = {"mass": r"jet $m / p_{T,jet}$ (constituents)", "pt": r"jet $p_T / p_{T,jet}$ (constituents)",
               "multiplicity": "particles per jet"}


def _subset(n: int, num: int | None, rng: np.random.Generator) -> np.ndarray:
    if num is None or num >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=num, replace=False))


def _read_jets(store, index: np.ndarray, num_particles: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``[N, P, 3]`` zero-padded jets and mask; clouds longer than P keep their P hardest particles."""
    names = store.point_features
    missing = [n for n in PARTICLE_FEATURES if n not in names]
    if missing:
        raise EvaluationError(f"{store.path}: no point feature {missing[0]!r} (has {', '.join(names)}); "
                              "expected jets in relative coordinates (etarel, phirel, ptrel)")
    clouds = store.take(index, fields=[])
    cols = [names.index(n) for n in PARTICLE_FEATURES]
    clouds = Clouds(np.ascontiguousarray(clouds.points[:, cols]), clouds.offsets, {}, PARTICLE_FEATURES)
    truncated = int(np.maximum(clouds.counts - num_particles, 0).sum())
    pf, _ = clouds_to_jetnet(clouds, num_particles)  # sorts by ptrel, so truncation keeps the hardest
    return pf[..., :3], pf[..., 3] > 0, truncated


def evaluate(real: str | os.PathLike, generated: str | os.PathLike, out: str | os.PathLike, *, split: str = "test",
             num: int | None = DEFAULT_NUM, seed: int = 0, progress: bool = True,
             config: MetricConfig | None = None, plots: bool = True) -> dict:
    """Compare a generated store with a split of a real one; write the report to ``out``.

    Args:
        real: the real store (path or catalog reference).
        generated: the generated store; all its clouds are candidates.
        out: the report directory (created; files in it are replaced).
        split: the real store's split to compare with (default ``test``).
        num: at most this many jets from each store, drawn at random without replacement
            (default 5000); None for all. The floor compares two halves of the real jets.
        seed: seeds the subsets, the halves and every metric's draws.
        progress: print what is being done, with timings, on stderr.
        config: batch sizes and counts (default :class:`MetricConfig` with ``eval_size`` = the
            size of a real half, or the generated sample if smaller).
        plots: draw the figures (a sweep scores many runs and skips them).

    Returns:
        The report written to ``out/metrics.json``; :func:`format_summary` makes it text.

    Raises:
        StoreNotFoundError, NotAStoreError, ...: a store cannot be opened.
        EvaluationError: a store lacks etarel/phirel/ptrel, the split does not exist, there are
            fewer than 4 real or 2 generated jets, or ``out`` cannot be created.
    """
    t0 = time.perf_counter()

    def say(message: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    if num is not None and num < 4:
        raise EvaluationError(f"num must be at least 4 (two real halves of 2 jets), found {num}")
    refuse_self_comparison(real, generated)
    real_store, gen_store = open_store(real), open_store(generated)
    try:
        split_index = real_store.split_indices(split)
    except KeyError as err:
        raise EvaluationError(str(err.args[0])) from err
    rng = np.random.default_rng(seed)
    real_index = split_index[_subset(len(split_index), num, rng)]
    gen_index = _subset(gen_store.num_clouds, num, rng)
    if len(real_index) < 4 or len(gen_index) < 2:
        raise EvaluationError(f"too few jets: {len(real_index)} real in split {split!r} of {real_store.path} "
                              f"(need 4), {len(gen_index)} generated in {gen_store.path} (need 2)")
    P = int(real_store.meta.attrs.get("num_particles") or real_store.counts[real_index].max())
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)  # before the slow part: a bad path fails at once
    except OSError as err:
        raise EvaluationError(f"{out}: cannot create the report directory ({err.strerror or err})") from err

    say(f"reading {len(real_index)} real jets (split {split}) and {len(gen_index)} generated jets, P = {P}")
    real_jets, real_mask, real_trunc = _read_jets(real_store, real_index, P)
    gen_jets, gen_mask, gen_trunc = _read_jets(gen_store, gen_index, P)

    config = config or MetricConfig()
    say(f"EFP features of {len(real_jets) + len(gen_jets)} jets (the slow step)")
    real_sample = JetSample.from_arrays(real_jets, real_mask, efp_jobs=config.efp_jobs)
    gen_sample = JetSample.from_arrays(gen_jets, gen_mask, efp_jobs=config.efp_jobs)

    rows_a, rows_b = floor_halves(len(real_sample), rng)
    half = len(rows_a)
    half_a, half_b = real_sample.subset(rows_a), real_sample.subset(rows_b)
    if config.eval_size is None:
        config = replace(config, eval_size=min(half, len(gen_sample)))

    # Chosen once, from all real jets, so that the metric and its floor use the same features.
    kl_features = informative_observables(real_sample.observables)
    if not kl_features:
        raise EvaluationError(f"{real_store.path}: every jet observable ({', '.join(JET_OBSERVABLES)}) is a spike "
                              f"in the {len(real_sample)} real jets; nothing for the KL metric")
    say(f"metrics: real vs generated, {config.eval_size} jets per draw")
    metrics = compare_jets(real_sample, gen_sample, config, seed=seed, kl_features=kl_features)
    say(f"metrics: real vs real floor, halves of {half}")
    floor = compare_jets(half_a, half_b, config, seed=seed, kl_features=kl_features)

    if plots:
        say(f"plots in {out}")
    drawn = [] if not plots else [
        plot_comparison({f: real_jets[..., j][real_mask] for j, f in enumerate(PARTICLE_FEATURES)},
                        {f: gen_jets[..., j][gen_mask] for j, f in enumerate(PARTICLE_FEATURES)},
                        out / "particle_features.png", labels=_PARTICLE_LABELS, log_x=("ptrel",),
                        log_y=("ptrel",), title="particle features"),
        plot_comparison({k: real_sample.observables[k] for k in JET_OBSERVABLES},
                        {k: gen_sample.observables[k] for k in JET_OBSERVABLES},
                        out / "jet_features.png", labels=_JET_LABELS, title="jet features"),
    ]

    placeholder = jet_metrics.wasserstein_placeholder_reason()
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "kind": "jets",
        "real": {"store": str(real_store.path), "split": split, "num_jets": len(real_sample),
                 "split_size": len(split_index), "num_particles": P, "truncated_points": real_trunc},
        "generated": {"store": str(gen_store.path), "num_jets": len(gen_sample), "store_size": gen_store.num_clouds,
                      "num_particles": P, "truncated_points": gen_trunc},
        "floor_halves": [len(half_a), len(half_b)],
        "eval_size": config.eval_size,
        "seed": seed,
        **{name: metrics[name].to_dict() for name in METRICS},
        "floor": {name: floor[name].to_dict() for name in METRICS},
        "kl_features": list(kl_features),
        "units": "value and error are raw x scale: w1m 0.64 at scale 1000 reads 0.64e-3; raw values under raw",
        "reference": REFERENCE,
        "config": config.to_dict(),
        "jetnet": {"version": _jetnet_version(), "wasserstein_placeholder": placeholder,
                   "unavailable": ["cov_mmd"] if placeholder else []},
        "plots": [p.name for p in drawn],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json_atomic(out / "metrics.json", report)  # readers never see half a report
    (out / "summary.txt").write_text(format_summary(report) + "\n", encoding="utf-8")
    say(f"done: {out / 'metrics.json'}")
    return report


def _jetnet_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jetnet")
    except PackageNotFoundError:
        return None


def format_summary(report: dict) -> str:
    """A short table of a report: each metric real vs generated beside the real-vs-real floor."""
    r, g = report["real"], report["generated"]
    lines = [
        f"{g['num_jets']} generated jets vs {r['num_jets']} real (split {r['split']}), P = {r['num_particles']}; "
        f"floor: two real halves of {report['floor_halves'][0]}; {report['eval_size']} jets per draw",
        f"{'metric':<7} {'generated':>22} {'real-vs-real floor':>22}  unit",
    ]
    for name in METRICS:
        m, f = report[name], report["floor"][name]
        exponent = round(np.log10(m["scale"])) if m["scale"] > 0 else 0
        lines.append(f"{name:<7} {_pm(m):>22} {_pm(f):>22}  x1e-{exponent}")
    published = report["reference"].get(f"top{r['num_particles']}")
    if published:
        shown = "; ".join(f"{who}: " + ", ".join(f"{k} {v}" for k, v in vals.items()) for who, vals in published.items())
        lines.append(f"published (top{r['num_particles']}, 50k jets): {shown}")
    left_out = [k for k in JET_OBSERVABLES if k not in report.get("kl_features", JET_OBSERVABLES)]
    if left_out:
        lines.append(f"kl over {', '.join(report['kl_features'])} ({', '.join(left_out)}: a spike in the real "
                     "jets, see jet_features.png)")
    if report["generated"]["truncated_points"]:
        lines.append(f"note: {report['generated']['truncated_points']} generated particles beyond P = "
                     f"{r['num_particles']} were dropped (the softest of each jet)")
    return "\n".join(lines)


def _pm(entry: dict) -> str:
    return f"{entry['value']:.3g} +- {entry['error']:.2g}"
