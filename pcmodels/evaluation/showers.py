"""Evaluate generated calorimeter showers the CaloChallenge way, beside the real-vs-real floor.

:func:`evaluate_showers` reads a real and a generated sample (each a shower store or a
CaloChallenge HDF5 file of the same geometry) once, in row blocks, and computes what the
official ``evaluate.py`` computes, with the same numbers on the same files (see
:mod:`pcmodels.metrics.calo`, :mod:`pcmodels.metrics.frechet`, :mod:`pcmodels.metrics.classifier`):

- the separation power of every official histogram (``Etot / Einc``, ``E layer l``, ``EC Eta
  layer l``, ..., ``Voxel distribution``) and of the paper's sparsity, EC r and width r ones;
- FPD and KPD (x1e3, with errors) on the official high-level array, with the official arguments
  (``min_samples=10000``, ``batch_size=10000``, seed 42);
- the low-level (voxels) and high-level classifiers' calibrated AUC and JSD.

Every number is computed twice: real vs generated, and between two disjoint halves of the real
sample (the floor: what Geant4 scores against itself at that sample size; the first half plays
the reference). The real-vs-generated numbers use the whole real selection as reference, so with
``num=None`` they equal the official code's on the same two files.

Thresholded voxels go to a memory-mapped file in a scratch directory (the classifier reads its
batches from there and the voxel spectrum is histogrammed from there); the features are computed
block by block, so memory stays bounded for ds3. The report appears only when complete:
everything is written into a hidden staging directory and moved into ``out`` at the end.

Output directory::

    REPORT/metrics.json              every number, the floor, sizes, seeds, versions
    REPORT/summary.txt               the table :func:`format_shower_summary` gives
    REPORT/histogram_chi2_<ds>.txt   the separation powers in the official file format
    REPORT/*.pdf, *.png              the figures of :mod:`.shower_plots`
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pcdata._io import write_json_atomic
from pcdata.geometry.calo import get_geometry

from ..errors import EvaluationError
from ..metrics import calo, frechet
from ..metrics.classifier import ClassifierConfig, ClassifierResult, classifier_metric
from . import shower_plots
from .floor import floor_halves, refuse_self_comparison
from .shower_samples import ShowerSample, describe, open_showers

__all__ = ["evaluate_showers", "format_shower_summary", "FAMILIES"]

REPORT_FORMAT, REPORT_VERSION = "pcmodels-evaluation", 1
#: Per-layer feature families, in the order of the official file (then the paper's extras).
#: Labels are ``f"{family} layer {l}"``: ``E layer 0``, ``EC Eta layer 0``, ...
FAMILIES = ("E", "EC Eta", "EC Phi", "Width Eta", "Width Phi", "Sparsity", "EC r", "Width r")
#: The official code's FPD/KPD arguments (jetnet's fpd/kpd otherwise at their defaults).
FPD_MIN_SAMPLES, KPD_BATCH_SIZE = 10_000, 10_000
_OFFICIAL_DATASET = {"ds1-photons": "1-photons", "ds1-pions": "1-pions", "ds2": "2", "ds3": "3"}


class _Pass:
    """One sample read once: its features, thresholded voxels on disk, its mean shower."""

    def __init__(self, sample: ShowerSample, work: Path, name: str, say):
        geo = get_geometry(sample.geometry)
        n = len(sample.rows)
        self.voxels = np.lib.format.open_memmap(work / f"{name}.npy", mode="w+", dtype=np.float32, shape=(n, geo.n_voxels))
        parts, total, done, t0 = [], np.zeros(geo.n_voxels), 0, time.perf_counter()
        for inc, block in sample.blocks():
            block = calo.threshold(block, geo)
            parts.append(calo.compute_features(block, inc, geo, thresholded=True))
            self.voxels[done:done + len(block)] = block
            total += block.sum(axis=0, dtype=np.float64)
            done += len(block)
            say(f"  {name}: {done}/{n} showers ({done / max(time.perf_counter() - t0, 1e-9):.0f}/s)", final=done == n)
        self.voxels.flush()
        self.features = calo.ShowerFeatures.concatenate(parts)
        self.incident = self.features.incident.astype(np.float64)
        self.mean = total / n
        self.high = calo.high_level_vector(self.features)

    def voxel_counts(self, rows: np.ndarray | None, edges: np.ndarray, block: int = 2048) -> np.ndarray:
        """Histogram of every voxel of ``rows`` (all when None), block by block."""
        rows = np.arange(len(self.voxels)) if rows is None else rows
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        for lo in range(0, len(rows), block):
            counts += np.histogram(self.voxels[rows[lo:lo + block]].ravel(), edges)[0]
        return counts

    def low_reader(self, rows: np.ndarray | None):
        """The official low-level classifier input of the given rows: ``[log10 E_inc, voxels / E_inc]``."""
        base = np.arange(len(self.voxels)) if rows is None else rows

        def read(index: np.ndarray) -> np.ndarray:
            r = base[index]
            inc = self.incident[r, None]
            return np.concatenate([np.log10(inc), self.voxels[r] / inc], axis=1).astype(np.float32)

        return read, len(base)

    def high_reader(self, rows: np.ndarray | None):
        """The official high-level classifier input of the given rows."""
        base = np.arange(len(self.high)) if rows is None else rows
        return (lambda index: self.high[base[index]].astype(np.float32)), len(base)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _sep_summary(seps: dict[str, float | None]) -> dict[str, float | None]:
    # The paper's summary numbers: each per-layer family averaged over its layers.
    out = {}
    for label in ("Etot / Einc", "Voxel distribution"):
        if label in seps:
            out[label] = seps[label]
    for family in FAMILIES:
        vals = [v for k, v in seps.items() if k.startswith(f"{family} layer ") and v is not None]
        if vals:
            out[f"{family} layer" if family == "E" else family] = float(np.mean(vals))
    return out


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("pointcloud-platform", "numpy", "scipy", "torch", "scikit-learn", "h5py"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _subset(rows: np.ndarray, num: int | None, rng: np.random.Generator) -> np.ndarray:
    if num is None or num >= len(rows):
        return rows
    return np.sort(rng.choice(rows, size=num, replace=False))


def evaluate_showers(real: str | os.PathLike, generated: str | os.PathLike, out: str | os.PathLike, *,
                     split: str | None = "test", num: int | None = 5000, seed: int = 0,
                     classifier: ClassifierConfig | None = None, plots: bool = True, floor: bool = True,
                     progress: bool = True, work_dir: str | os.PathLike | None = None) -> dict:
    """Compare generated showers with real ones; write the report to ``out``.

    Args:
        real: a shower store (path or catalog reference) or a CaloChallenge HDF5 file.
        generated: the same, of the same geometry.
        out: the report directory (created; files in it are replaced; nothing is written to
            it unless the whole evaluation succeeds).
        split: the real store's split (default ``test``; None for every cloud). Files and the
            generated sample are used whole.
        num: at most this many generated showers, and twice as many real ones (so that each
            real half of the floor is as large as the generated sample), drawn at random
            (seeded); None for all.
        seed: seeds the subsets, the real halves and the classifiers. FPD and KPD use the
            official seed 42 for their draws.
        classifier: the classifiers' options (default :class:`ClassifierConfig` with
            ``seed=seed``).
        plots: draw the figures.
        floor: also compute every number for the two real halves (``floor`` in the report);
            False halves the cost (the report's ``floor`` is then None).
        progress: print what is being done, with timings, on stderr.
        work_dir: where the scratch voxel files go (default the system's temporary directory);
            about ``4 * n_voxels`` bytes per shower, removed at the end.

    Returns:
        The report written to ``out/metrics.json``.

    Raises:
        EvaluationError: an input that is not a shower store or CaloChallenge file, different
            geometries, bad values, fewer than 10 real or 5 generated showers, or ``out``
            cannot be written.
    """
    t0 = time.perf_counter()
    last = [0.0]

    def say(message: str, final: bool = True) -> None:
        # Block progress lines at most every few seconds; every other line always.
        now = time.perf_counter() - t0
        if progress and (final or now - last[0] > 5):
            last[0] = now
            print(f"[{now:6.1f}s] {message}", file=sys.stderr, flush=True)

    if num is not None and num < 5:
        raise EvaluationError(f"num must be at least 5, got {num}")
    refuse_self_comparison(real, generated)
    real_sample = open_showers(real, split=split if not os.path.isfile(str(real)) else None)
    gen_sample = open_showers(generated)
    if real_sample.geometry != gen_sample.geometry:
        raise EvaluationError(f"{gen_sample.source}: {gen_sample.geometry} showers cannot be compared with the "
                              f"{real_sample.geometry} showers of {real_sample.source}")
    geo = get_geometry(real_sample.geometry)
    rng = np.random.default_rng(seed)
    real_sample = real_sample.with_rows(_subset(real_sample.rows, None if num is None else 2 * num, rng))
    gen_sample = gen_sample.with_rows(_subset(gen_sample.rows, num, rng))
    if len(real_sample.rows) < 10 or len(gen_sample.rows) < 5:
        raise EvaluationError(f"too few showers: {len(real_sample.rows)} real in {real_sample.source} (need 10), "
                              f"{len(gen_sample.rows)} generated in {gen_sample.source} (need 5)")
    config = classifier if classifier is not None else ClassifierConfig(seed=seed)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as err:
        raise EvaluationError(f"{out}: cannot create the report directory ({err.strerror or err})") from err
    try:
        with tempfile.TemporaryDirectory(prefix="pcmodels-eval-", dir=work_dir) as work:
            report = _evaluate(real_sample, gen_sample, geo, Path(work), stage, config, seed, num, plots, floor, say)
        report["seconds"] = round(time.perf_counter() - t0, 2)
        write_json_atomic(stage / "metrics.json", report, allow_nan=False)
        (stage / "summary.txt").write_text(format_shower_summary(report) + "\n", encoding="utf-8")
        out.mkdir(exist_ok=True)
        for item in sorted(stage.iterdir(), key=lambda p: p.name == "metrics.json"):  # metrics.json last
            os.replace(item, out / item.name)
    except OSError as err:
        raise EvaluationError(f"{out}: cannot write the report ({err.strerror or err})") from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    say(f"done: {out / 'metrics.json'}")
    return report


def _evaluate(real_sample, gen_sample, geo, work: Path, stage: Path, config: ClassifierConfig, seed: int,
              num, plots: bool, floor: bool, say) -> dict:
    say(f"{geo.name}: reading {len(real_sample.rows)} real showers ({real_sample.source}) and "
        f"{len(gen_sample.rows)} generated ({gen_sample.source})")
    t = time.perf_counter()
    real = _Pass(real_sample, work, "real", say)
    gen = _Pass(gen_sample, work, "generated", say)
    timings = {"features": time.perf_counter() - t}
    a, b = floor_halves(len(real.features), np.random.default_rng([seed, 1]))

    say("separation powers")
    t = time.perf_counter()
    seps = calo.separation_powers(real.features, gen.features,
                                  lambda edges: (real.voxel_counts(None, edges), gen.voxel_counts(None, edges)))
    floor_seps = calo.separation_powers(real.features.subset(a), real.features.subset(b),
                                        lambda edges: (real.voxel_counts(a, edges), real.voxel_counts(b, edges))
                                        ) if floor else None
    timings["separation_power"] = time.perf_counter() - t

    say(f"FPD and KPD on {real.high.shape[1]} high-level features")
    t = time.perf_counter()
    distances = {}
    pairs = {"model": (real.high, gen.high), "floor": (real.high[a], real.high[b])}
    for key, (x, y) in pairs.items() if floor else [("model", pairs["model"])]:
        distances[key] = {"fpd": frechet.fpd(x, y, min_samples=FPD_MIN_SAMPLES),
                          "kpd": frechet.kpd(x, y, batch_size=KPD_BATCH_SIZE)}
    timings["fpd_kpd"] = time.perf_counter() - t

    classifiers: dict[str, dict[str, ClassifierResult]] = {"model": {}, "floor": {}}
    for level, reader in (("low", "low_reader"), ("high", "high_reader")):
        for key, (r_rows, g_pass, g_rows) in (("model", (None, gen, None)), ("floor", (a, real, b)))[:2 if floor else 1]:
            say(f"classifier ({level}-level, {'real vs generated' if key == 'model' else 'real vs real'}), "
                f"{config.epochs} epochs")
            t = time.perf_counter()
            r_read, n_r = getattr(real, reader)(r_rows)
            g_read, n_g = getattr(g_pass, reader)(g_rows)
            try:
                classifiers[key][level] = classifier_metric(r_read, n_r, g_read, n_g, config,
                                                            progress=lambda m: say(f"  {m}", final=False))
            except ValueError as err:
                raise EvaluationError(str(err)) from err
            timings[f"classifier_{level}"] = timings.get(f"classifier_{level}", 0) + time.perf_counter() - t

    def numbers(sep, dist, cls) -> dict:
        values = {label: _finite(v["value"]) for label, v in sep.items()}
        return {
            "separation_power": values,
            "separation_power_mean": _sep_summary(values),
            "fpd": {"value": dist["fpd"][0] * 1e3, "error": dist["fpd"][1] * 1e3, "scale": 1000.0},
            "kpd": {"value": dist["kpd"][0] * 1e3, "error": dist["kpd"][1] * 1e3, "scale": 1000.0},
            "auc_low": _finite(cls["low"].auc), "jsd_low": _finite(cls["low"].jsd),
            "auc_high": _finite(cls["high"].auc), "jsd_high": _finite(cls["high"].jsd),
        }

    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "kind": "showers",
        "geometry": geo.name,
        "threshold_mev": calo.THRESHOLD_MEV[geo.name],
        "real": describe(real_sample),
        "generated": describe(gen_sample),
        "floor_halves": [int(len(a)), int(len(b))],
        "num": num,
        "seed": seed,
        **numbers(seps, distances["model"], classifiers["model"]),
        "official_labels": [k for k, v in seps.items() if v["official"]],
        "floor": numbers(floor_seps, distances["floor"], classifiers["floor"]) if floor else None,
        "classifier": {"config": {**asdict(config), "split": list(config.split)},
                       **{f"{level}": classifiers["model"][level].to_dict() for level in ("low", "high")},
                       "floor": {level: c.to_dict() for level, c in classifiers["floor"].items()} or None},
        "fpd_kpd": {"fpd_min_samples": FPD_MIN_SAMPLES, "kpd_batch_size": KPD_BATCH_SIZE, "seed": 42},
        "versions": _versions(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    _write_official_chi2(stage / f"histogram_chi2_{_OFFICIAL_DATASET[geo.name]}.txt", seps)
    report["plots"] = []
    if plots:
        say("plots")
        report["plots"] = _plots(stage, geo, real, gen, seps, floor_seps, classifiers["model"])
    return report


def _plots(stage: Path, geo, real: _Pass, gen: _Pass, seps, floor_seps, classifiers) -> list[str]:
    files = []
    files += shower_plots.plot_average_shower(real.mean, gen.mean, geo.name, stage / "average_shower")
    files += shower_plots.plot_profiles(real.mean, gen.mean, geo.name, stage / "profiles")
    files += shower_plots.plot_histograms(seps, ["Etot / Einc", "Voxel distribution"], stage / "etot_voxels",
                                          title="E_tot / E_inc and the voxel spectrum")
    layers = shower_plots._pick_layers(geo.active_layers, 6)
    for family, name, log_x, unit in (("E", "e_layer", True, "E [MeV]"), ("EC Eta", "ec_eta", False, "[mm]"),
                                      ("EC Phi", "ec_phi", False, "[mm]"), ("Width Eta", "width_eta", False, "[mm]"),
                                      ("Width Phi", "width_phi", False, "[mm]"), ("EC r", "ec_r", False, "[mm]"),
                                      ("Width r", "width_r", False, "[mm]"), ("Sparsity", "sparsity", False, "")):
        labels = [f"{family} layer {l}" for l in layers]
        if any(l in seps for l in labels):
            files += shower_plots.plot_histograms(seps, labels, stage / name, title=family, log_x=log_x, xlabel=unit)
    values = {k: v["value"] for k, v in seps.items()}
    floor = {k: v["value"] for k, v in (floor_seps or {}).items()}
    files += shower_plots.plot_separation_by_layer(values, floor, geo.active_layers, stage / "separation_power",
                                                   families=FAMILIES)
    files += shower_plots.plot_classifier({f"{k}-level": v for k, v in classifiers.items()}, stage / "classifier")
    return [p.name for p in files]


def _write_official_chi2(path: Path, seps: dict) -> None:
    # The official hist-chi file, byte for byte: label line, str(numpy float64), blank line.
    lines = ["List of chi2 of the plotted histograms, see eq. 15 of 2009.03796 for its definition.\n"]
    for label, v in seps.items():
        if v["official"]:
            lines.append(f"{label}: \n{np.float64(v['value'])}\n\n")
    path.write_text("".join(lines), encoding="utf-8")


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)


_NO_FLOOR = {"fpd": {"value": float("nan"), "error": float("nan")}, "kpd": {"value": float("nan"), "error": float("nan")},
             "auc_low": None, "jsd_low": None, "auc_high": None, "jsd_high": None, "separation_power_mean": {}}


def format_shower_summary(report: dict) -> str:
    """A readable table of a shower report: each number beside the real-vs-real floor."""
    r, g = report["real"], report["generated"]
    f = report["floor"] or _NO_FLOOR
    cls = report["classifier"]
    lines = [
        f"{report['geometry']} showers: {g['num_showers']} generated ({g['source']}) vs {r['num_showers']} real "
        f"({r['source']}); " + (f"floor: two real halves of {report['floor_halves'][0]}" if report["floor"]
                                 else "no floor computed"),
        f"classifiers: {cls['config']['epochs']} epochs, best at {cls['low']['best_epoch']} (low) and "
        f"{cls['high']['best_epoch']} (high), {cls['low']['precision']}, split {cls['config']['split']}",
        f"{'metric':<24} {'generated':>20} {'real-vs-real floor':>20}",
    ]
    for key, name in (("fpd", "FPD x1e3"), ("kpd", "KPD x1e3")):
        m, fl = report[key], f[key]
        lines.append(f"{name:<24} {m['value']:>11.4f} +- {m['error']:<6.4f} {fl['value']:>11.4f} +- {fl['error']:<6.4f}")
    for key, name in (("auc_low", "AUC low (voxels)"), ("jsd_low", "JSD low"), ("auc_high", "AUC high (features)"),
                      ("jsd_high", "JSD high")):
        lines.append(f"{name:<24} {_fmt(report[key]):>20} {_fmt(f[key]):>20}")
    lines.append("separation power (per-layer features: mean over layers)")
    for label, value in report["separation_power_mean"].items():
        lines.append(f"  {label:<22} {_fmt(value, '.3e'):>20} {_fmt(f['separation_power_mean'].get(label), '.3e'):>20}")
    return "\n".join(lines)
