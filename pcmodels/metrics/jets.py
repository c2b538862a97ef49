"""The field's standard jet metrics (``jetnet.evaluation``) on zero-padded ``[N, P, 3]`` arrays.

Every function takes jets as ``(etarel, phirel, ptrel)`` arrays padded with zeros, the layout of
JetNet and of :meth:`pcdata.Store.to_numpy`, and returns a :class:`MetricValue`: the raw value and
its uncertainty plus the factor the field multiplies by when it reports (W1M and W1P x1e3, W1EFP
x1e5, FPD and KPD x1e3).

Importing ``jetnet.evaluation`` under numpy 2: jetnet imports energyflow, which imports
``wasserstein`` at import time; the ``wasserstein`` wheels are built against numpy 1 and fail with
``numpy.core.multiarray failed to import``. None of W1M, W1P, W1EFP, FPD or KPD uses it (only the
EMD-based ``cov_mmd`` does), so :func:`load_jetnet_evaluation` registers an empty placeholder
module named ``wasserstein`` in ``sys.modules`` when, and only when, the real import fails. With
the placeholder in place ``cov_mmd`` (and ``energyflow.emd``) is unavailable: touching the
placeholder raises an ``AttributeError`` that says why.

jetnet defaults expect 50k jets per sample; here every sample size is a parameter (see
:class:`MetricConfig`) and jetnet's "recommended number of jets" warnings are silenced, because
the sizes are chosen on purpose and recorded in the report. jetnet draws its W1 batches from an
unseeded module-level generator; the functions here swap in a seeded one for the call, so a
report is reproducible.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import sys
import types
import warnings
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

from .value import MetricValue, metric_value as _value

__all__ = [
    "PARTICLE_FEATURES",
    "JET_OBSERVABLES",
    "SCALES",
    "MetricConfig",
    "JetSample",
    "load_jetnet_evaluation",
    "wasserstein_placeholder_reason",
    "w1m",
    "w1p",
    "w1efp",
    "efp_features",
    "w1efp_from_features",
    "fpd",
    "kpd",
    "jet_observables",
    "informative_observables",
    "compare_jets",
]

PARTICLE_FEATURES = ("etarel", "phirel", "ptrel")
#: Jet-level observables from the relative constituents (see :func:`jet_observables`).
JET_OBSERVABLES = ("mass", "pt", "multiplicity")

# The factors the field multiplies by when it reports each metric.
SCALES = {"w1m": 1e3, "w1p": 1e3, "w1efp": 1e5, "fpd": 1e3, "kpd": 1e3}

# Warnings of jetnet and of the libraries under it that say nothing about the result: the sample
# sizes are chosen on purpose, and scipy deprecates an argument jetnet still passes.
_QUIET = (
    ("ignore", r"Recommended number of (jets|samples) for", RuntimeWarning),
    ("ignore", r"The `disp` argument is deprecated", DeprecationWarning),
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for action, message, category in _QUIET:
            warnings.filterwarnings(action, message=message, category=category)
        yield


# -- importing jetnet.evaluation under numpy 2 --------------------------------------------------

_PLACEHOLDER_FLAG = "__pcmodels_placeholder__"


def _make_placeholder(reason: str) -> types.ModuleType:
    module = types.ModuleType(
        "wasserstein",
        "Placeholder registered by pcmodels.metrics.jets: the real 'wasserstein' package failed to import "
        f"({reason}). EMD-based metrics (jetnet cov_mmd, energyflow.emd) are unavailable.",
    )
    setattr(module, _PLACEHOLDER_FLAG, reason)

    def __getattr__(name: str):
        # An AttributeError (not ImportError) so that hasattr() probes of the module still work.
        raise AttributeError(
            f"wasserstein.{name}: the 'wasserstein' package could not be imported ({reason}); "
            "EMD-based metrics such as jetnet's cov_mmd are unavailable (its wheels need numpy 1)"
        )

    module.__getattr__ = __getattr__  # PEP 562 module-level __getattr__
    return module


def _ensure_wasserstein() -> str | None:
    """Import the real ``wasserstein``; register the placeholder only if that fails.

    Returns:
        None when the real module is (or already was) importable, else why it is not.
    """
    present = sys.modules.get("wasserstein")
    if present is not None:
        return getattr(present, _PLACEHOLDER_FLAG, None)
    # numpy prints a long "compiled using NumPy 1.x" traceback on stderr before raising: keep it
    # out of the user's terminal, the reason is recorded instead.
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            importlib.import_module("wasserstein")
            return None
        except ImportError as err:
            reason = f"{type(err).__name__}: {err}"
    sys.modules["wasserstein"] = _make_placeholder(reason)
    return reason


def wasserstein_placeholder_reason() -> str | None:
    """Why the ``wasserstein`` placeholder is in use, or None if the real package is loaded."""
    present = sys.modules.get("wasserstein")
    return None if present is None else getattr(present, _PLACEHOLDER_FLAG, None)


def load_jetnet_evaluation() -> types.ModuleType:
    """``jetnet.evaluation.gen_metrics``, imported safely under numpy 2 (see the module docstring).

    The import is lazy (it pulls in torch and numba, several seconds) and happens once.
    """
    _ensure_wasserstein()
    with _quiet():
        return importlib.import_module("jetnet.evaluation.gen_metrics")


@contextlib.contextmanager
def _seeded(gm: types.ModuleType, seed: int) -> Iterator[None]:
    # jetnet's w1m/w1p/w1efp draw from the module global ``rng``: swap in a seeded one.
    saved = gm.rng
    gm.rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        gm.rng = saved


# -- sizes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricConfig:
    """Sample sizes and batch counts of the metrics (jetnet's defaults assume 50k jets).

    Attributes:
        eval_size: jets drawn (with replacement) from each sample per W1 batch, and the largest
            FPD/KPD batch; None: the smaller sample's size.
        w1_batches: W1 batches averaged (jetnet default 5).
        fpd_batches: FPD batches per batch size (jetnet default 20).
        fpd_points: FPD batch sizes between ``fpd_min_fraction * eval_size`` and ``eval_size``,
            evenly spaced in 1/N, extrapolated to 1/N = 0 (jetnet default 10, 20k..50k).
        fpd_min_fraction: smallest FPD batch as a fraction of the largest (jetnet: 20k/50k).
        kpd_batches: KPD batches (jetnet default 10); kpd_batch_size: at most this many jets per
            KPD batch (jetnet default 5000).
        kl_bins, kl_quantiles, kl_eps, kl_bootstrap: the KL metric (see :mod:`.kl`).
        efp_jobs: processes for the EFP features (None: the CPUs this process may use).
    """

    eval_size: int | None = None
    w1_batches: int = 5
    fpd_batches: int = 20
    fpd_points: int = 10
    fpd_min_fraction: float = 0.4
    kpd_batches: int = 10
    kpd_batch_size: int = 5000
    kl_bins: int = 30
    kl_quantiles: tuple[float, float] = (0.001, 0.999)
    kl_eps: float = 1e-8
    kl_bootstrap: int = 50
    efp_jobs: int | None = None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _jobs(jobs: int | None) -> int:
    if jobs is not None:
        return max(1, int(jobs))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _size(n: int | None, *samples) -> int:
    smallest = min(len(s) for s in samples)
    if smallest < 2:
        raise ValueError(f"need at least 2 jets per sample, found {smallest}")
    return smallest if n is None else max(2, int(n))


def _check_jets(*jets: np.ndarray) -> None:
    for j in jets:
        if np.ndim(j) != 3 or np.shape(j)[2] < 3:
            raise ValueError(f"jets must have shape [N, P, 3] (etarel, phirel, ptrel), found {np.shape(j)}")


# -- the metrics ------------------------------------------------------------------------------------


def w1m(real: np.ndarray, generated: np.ndarray, *, eval_size: int | None = None, num_batches: int = 5,
        seed: int = 0) -> MetricValue:
    """W1 distance between the relative jet masses (jetnet ``w1m``), reported x1e3.

    Args:
        real, generated: ``[N, P, 3]`` zero-padded (etarel, phirel, ptrel).
        eval_size: jets per batch from each sample (default: the smaller sample's size).
        num_batches: batches averaged; the error is their std.
        seed: seeds the batch draws.
    """
    _check_jets(real, generated)
    gm = load_jetnet_evaluation()
    with _quiet(), _seeded(gm, seed):
        mean, std = gm.w1m(np.asarray(real, np.float64), np.asarray(generated, np.float64),
                           num_eval_samples=_size(eval_size, real, generated), num_batches=num_batches)
    return _value(mean, std, SCALES["w1m"])


def w1p(real: np.ndarray, generated: np.ndarray, *, mask_real: np.ndarray | None = None,
        mask_generated: np.ndarray | None = None, eval_size: int | None = None, num_batches: int = 5,
        seed: int = 0) -> MetricValue:
    """W1 distances of the particle features (jetnet ``w1p``), averaged over the three, x1e3.

    Padding (all-zero particles, or ``mask`` False) is excluded. ``components`` holds the
    per-feature values (etarel, phirel, ptrel). Arguments as for :func:`w1m`.
    """
    _check_jets(real, generated)
    gm = load_jetnet_evaluation()
    with _quiet(), _seeded(gm, seed):
        means, stds = gm.w1p(np.asarray(real, np.float64)[..., :3], np.asarray(generated, np.float64)[..., :3],
                             mask1=mask_real, mask2=mask_generated,
                             num_eval_samples=_size(eval_size, real, generated), num_batches=num_batches)
    return _value(means, stds, SCALES["w1p"], list(PARTICLE_FEATURES))


def w1efp(real: np.ndarray, generated: np.ndarray, *, eval_size: int | None = None, num_batches: int = 5,
          seed: int = 0, efp_jobs: int | None = None) -> MetricValue:
    """W1 distances of jetnet's 5 EFPs (n=4, d=4, prime), averaged over them (jetnet ``w1efp``), x1e5.

    Computes the EFPs itself; :func:`w1efp_from_features` gives the same numbers from the 36
    features of :func:`efp_features` (so an evaluation computes EFPs once).
    """
    _check_jets(real, generated)
    gm = load_jetnet_evaluation()
    with _quiet(), _seeded(gm, seed):
        means, stds = gm.w1efp(np.asarray(real, np.float64)[..., :3], np.asarray(generated, np.float64)[..., :3],
                               num_eval_samples=_size(eval_size, real, generated), num_batches=num_batches,
                               efp_jobs=_jobs(efp_jobs))
    return _value(means, stds, SCALES["w1efp"], [f"efp{i}" for i in range(len(means))])


def efp_features(jets: np.ndarray, *, efp_jobs: int | None = None) -> np.ndarray:
    """The 36 EFPs (d <= 4) jetnet uses for FPD and KPD (``get_fpd_kpd_jet_features``), ``[N, 36]``.

    The costly step: ~650 jets/s for 30 particles, ~70-100 jets/s for 150, per core.
    """
    _check_jets(jets)
    gm = load_jetnet_evaluation()
    with _quiet():
        return np.asarray(gm.get_fpd_kpd_jet_features(np.asarray(jets, np.float64)[..., :3], efp_jobs=_jobs(efp_jobs)))


@functools.lru_cache(maxsize=1)
def _w1efp_columns() -> np.ndarray:
    """Which of the 36 d<=4 EFPs are jetnet's W1EFP set (its ``efps`` default: n=4, d=4, prime)."""
    load_jetnet_evaluation()  # the placeholder first: energyflow imports wasserstein
    import energyflow

    # The same EFPSet arguments as jetnet.utils.efps, so the graphs come in the same order.
    efpset = energyflow.EFPSet(("d<=", 4), measure="hadr", beta=1, normed=None, coords="ptyphim")
    columns = np.flatnonzero(efpset.sel(("n==", 4), ("d==", 4), ("p==", 1)))
    columns.flags.writeable = False  # cached and shared
    return columns


def w1efp_from_features(real_efps: np.ndarray, generated_efps: np.ndarray, *, eval_size: int | None = None,
                        num_batches: int = 5, seed: int = 0) -> MetricValue:
    """jetnet's W1EFP from precomputed :func:`efp_features`: the same draws and numbers as
    :func:`w1efp` with the same seed (its loop, on the five columns of its EFP set)."""
    from scipy.stats import wasserstein_distance

    cols = _w1efp_columns()
    a, b = np.asarray(real_efps)[:, cols], np.asarray(generated_efps)[:, cols]
    n = _size(eval_size, a, b)
    rng = np.random.default_rng(seed)
    w1s = []
    for _ in range(num_batches):
        ra, rb = a[rng.choice(len(a), size=n)], b[rng.choice(len(b), size=n)]
        w1s.append([wasserstein_distance(ra[:, i], rb[:, i]) for i in range(len(cols))])
    return _value(np.mean(w1s, axis=0), np.std(w1s, axis=0), SCALES["w1efp"], [f"efp{i}" for i in range(len(cols))])


def fpd(real_efps: np.ndarray, generated_efps: np.ndarray, *, eval_size: int | None = None,
        min_fraction: float = 0.4, num_points: int = 10, num_batches: int = 20, seed: int = 0) -> MetricValue:
    """Frechet physics distance on EFP features (jetnet ``fpd``), extrapolated to infinite samples, x1e3.

    Args:
        real_efps, generated_efps: ``[N, F]`` features, usually :func:`efp_features`.
        eval_size: the largest batch (default: the smaller sample's size; jetnet uses 50k).
        min_fraction: the smallest batch as a fraction of ``eval_size`` (jetnet: 20k/50k).
        num_points, num_batches: batch sizes fitted, batches per size.
        seed: jetnet's ``seed``.
    """
    gm = load_jetnet_evaluation()
    top = _size(eval_size, real_efps, generated_efps)
    low = max(2, min(top, int(round(min_fraction * top))))
    with _quiet():
        value, error = gm.fpd(np.asarray(real_efps), np.asarray(generated_efps), min_samples=low, max_samples=top,
                              num_batches=num_batches, num_points=num_points, seed=seed)
    return _value(value, error, SCALES["fpd"])


def kpd(real_efps: np.ndarray, generated_efps: np.ndarray, *, batch_size: int | None = None,
        num_batches: int = 10, seed: int = 0) -> MetricValue:
    """Kernel physics distance on EFP features (jetnet ``kpd``: median and half the 68% spread), x1e3.

    Args:
        batch_size: jets per batch (default: the smaller sample's size, at most jetnet's 5000).
    """
    gm = load_jetnet_evaluation()
    n = _size(batch_size, real_efps, generated_efps) if batch_size else min(5000, _size(None, real_efps, generated_efps))
    with _quiet():
        value, error = gm.kpd(np.asarray(real_efps), np.asarray(generated_efps), num_batches=num_batches,
                              batch_size=n, seed=seed)
    return _value(value, error, SCALES["kpd"])


def jet_observables(jets: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Jet-level observables from relative constituents, as the metrics see them.

    Returns:
        ``mass``: m / pT_jet of the massless constituent sum (what jetnet's W1M compares);
        ``pt``: pT of the constituent sum / pT_jet (1 for a complete jet, below for truncated ones);
        ``multiplicity``: number of real particles.
    """
    from pcdata.geometry.jets import jet_from_constituents

    _check_jets(jets)
    jets = np.asarray(jets, np.float64)
    if mask is None:
        mask = np.any(jets[..., :3] != 0, axis=-1)
    jet = jet_from_constituents(jets[..., 2], jets[..., 0], jets[..., 1], np.zeros_like(jets[..., 2]), mask)
    return {"mass": np.asarray(jet.mass), "pt": np.asarray(jet.pt), "multiplicity": mask.sum(-1).astype(np.float64)}


def informative_observables(observables: Mapping[str, np.ndarray], *, rel_width: float = 1e-4) -> tuple[str, ...]:
    """The observables whose central 68% spans more than ``rel_width`` of their size.

    A binned KL divergence of a spike is meaningless: the pT of the constituent sum of complete
    jets (JetNet150) is 1 up to rounding, so any generated spread lands in the outermost bins and
    swamps the other features. Such observables are left out of the KL metric (the plots keep them).
    """
    keep = []
    for name, values in observables.items():
        lo, mid, hi = np.quantile(np.asarray(values, np.float64), (0.16, 0.5, 0.84))
        if hi - lo > rel_width * max(1.0, abs(mid)):
            keep.append(name)
    return tuple(keep)


# -- all metrics for two samples --------------------------------------------------------------------


@dataclass(frozen=True)
class JetSample:
    """A jet sample with what every metric needs, computed once (EFPs are the costly part).

    Attributes:
        jets: float32 ``[N, P, 3]`` zero-padded (etarel, phirel, ptrel).
        mask: bool ``[N, P]``.
        efps: ``[N, 36]`` :func:`efp_features`.
        observables: :func:`jet_observables`.
    """

    jets: np.ndarray
    mask: np.ndarray
    efps: np.ndarray
    observables: dict[str, np.ndarray]

    @classmethod
    def from_arrays(cls, jets: np.ndarray, mask: np.ndarray | None = None, *, efp_jobs: int | None = None) -> "JetSample":
        _check_jets(jets)
        jets = np.asarray(jets)[..., :3]
        mask = np.any(jets != 0, axis=-1) if mask is None else np.asarray(mask, bool)
        return cls(jets, mask, efp_features(jets, efp_jobs=efp_jobs), jet_observables(jets, mask))

    def __len__(self) -> int:
        return len(self.jets)

    def subset(self, index: np.ndarray) -> "JetSample":
        """The jets at ``index`` (features are sliced, not recomputed)."""
        return JetSample(self.jets[index], self.mask[index], self.efps[index],
                         {k: v[index] for k, v in self.observables.items()})


def compare_jets(real: JetSample, generated: JetSample, config: MetricConfig = MetricConfig(), *,
                 seed: int = 0, kl_features: Sequence[str] | None = None) -> dict[str, MetricValue]:
    """Every metric between two samples: ``w1m``, ``w1p``, ``w1efp``, ``fpd``, ``kpd``, ``kl``.

    Args:
        real: the reference (the KL binning comes from it).
        generated: the sample compared with it.
        config: sample sizes and batch counts.
        seed: seeds every draw.
        kl_features: the observables of the KL metric (default: :func:`informative_observables`
            of ``real``).
    """
    from .kl import kl_metric

    c = config
    n = _size(c.eval_size, real, generated)
    if kl_features is None:
        kl_features = informative_observables(real.observables)
    if not kl_features:
        raise ValueError("no observable left for the KL metric")
    return {
        "w1m": w1m(real.jets, generated.jets, eval_size=n, num_batches=c.w1_batches, seed=seed),
        "w1p": w1p(real.jets, generated.jets, mask_real=real.mask, mask_generated=generated.mask, eval_size=n,
                   num_batches=c.w1_batches, seed=seed),
        "w1efp": w1efp_from_features(real.efps, generated.efps, eval_size=n, num_batches=c.w1_batches, seed=seed),
        "fpd": fpd(real.efps, generated.efps, eval_size=n, min_fraction=c.fpd_min_fraction, num_points=c.fpd_points,
                   num_batches=c.fpd_batches, seed=seed),
        "kpd": kpd(real.efps, generated.efps, batch_size=min(n, c.kpd_batch_size), num_batches=c.kpd_batches,
                   seed=seed),
        "kl": kl_metric({k: real.observables[k] for k in kl_features},
                        {k: generated.observables[k] for k in kl_features}, bins=c.kl_bins, quantiles=c.kl_quantiles,
                        eps=c.kl_eps, num_bootstrap=c.kl_bootstrap, sample_size=n, seed=seed),
    }
