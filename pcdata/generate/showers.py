"""Parametrised electromagnetic showers in the CaloChallenge layout (GFlash-style).

The real CaloChallenge showers come from Geant4, which cannot run here. This module makes files
of the same format and of plausible shape for tests, demos and pipeline benchmarks, following
the GFlash parametrisation (Grindhammer & Peters, hep-ex/0001020):

- **Longitudinal**: each shower's energy follows a Gamma profile in radiation lengths ``t``
  with ``T_max = (alpha - 1) / beta``; ``ln T_max`` and ``ln alpha`` are drawn per shower from a
  correlated Gaussian whose means grow with ``ln(E / E_c)`` (``T_max ~ ln(E/E_c) - 0.858``) and
  whose widths shrink with it.
- **Radial**: core + tail, ``f(r) = p f_C(r) + (1 - p) f_T(r)`` with
  ``f_X(r) = 2 r R_X^2 / (r^2 + R_X^2)^2`` (in Moliere radii), ``R_C``, ``R_T`` and ``p`` depending
  on the relative depth ``t / T_max`` and on ``ln E``.
- **Sampling fluctuations**: the visible energy is carried by discrete spots; their number is
  Poisson with mean ``a E^0.876`` (E in GeV, the GFlash spot-count law) and their energies are
  Gamma distributed, so ``E_vis / E_inc`` scatters around the sampling fraction with a relative
  spread falling like ``E^-0.44``.
- **Readout**: spots are binned into the geometry's voxels (layer from depth, angle uniform
  around a shower axis jittered by the beam spot, radius from the radial profile); spots beyond
  the last layer or radius are lost (leakage); voxels below 15.15 keV are zeroed.

Parameters per geometry (:class:`ShowerModel`) are plausible choices (a Si-W sampling
calorimeter for ds2/ds3, an ATLAS-like depth for ds1), not fits to Geant4. ``ds1-pions`` uses the
same electromagnetic model on a stretched depth scale: a stand-in for file format and volume,
not hadronic physics.

Generation is split into fixed partitions of :data:`PARTITION_SIZE` showers, each with its own
seed derived from ``(seed, partition index)``, so the same seed and number of showers give the
same file whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry.calo import GEOMETRY_NAMES, CaloGeometry, GeometryName, get_geometry
from ..geometry.voxels import READOUT_THRESHOLD_MEV
from ..sources.calochallenge import CaloChallengeWriter
# The package's generation error (a PcdataError and a ValueError: the CLI prints one line).
from ..errors import GenerateError

__all__ = [
    "PARTITION_SIZE",
    "ShowerModel",
    "GeneratedFile",
    "shower_model",
    "sample_incident_energies",
    "simulate_showers",
    "generate_showers",
]

#: Showers per partition: the unit of seeding, of work per process and of writing.
PARTITION_SIZE = 128
#: Upper bounds per vectorised step: spots (~100 bytes each) and voxel cells (8 bytes each, the
#: float64 accumulator), so memory stays near 100 MB whatever the energies and the geometry.
_MAX_SPOTS_PER_STEP = 1_000_000
_MAX_CELLS_PER_STEP = 1 << 22


@dataclass(frozen=True)
class ShowerModel:
    """Detector parameters of the parametrised shower for one geometry.

    Attributes:
        layer_x0: thickness of each layer in radiation lengths (0 for a layer without voxels).
        moliere_mm: Moliere radius, mm.
        critical_mev: critical energy E_c, MeV.
        z_eff: effective atomic number (enters the GFlash parameters).
        sampling_fraction: mean visible / incident energy for a contained shower.
        spots_per_gev: ``a`` in the mean spot count ``a * E[GeV]^0.876``.
        spot_shape: Gamma shape of spot energies (smaller: more spread, more small hits).
        axis_jitter_mm: Gaussian spread of the shower axis around the voxel grid's axis.
        discrete_energies: True for dataset 1 (15 energies 2^8..2^22 MeV), else log-uniform
            1 GeV .. 1 TeV.
    """

    layer_x0: tuple[float, ...]
    moliere_mm: float
    critical_mev: float = 8.0
    z_eff: float = 74.0
    sampling_fraction: float = 0.6
    spots_per_gev: float = 150.0
    spot_shape: float = 0.35
    axis_jitter_mm: float = 1.0
    discrete_energies: bool = False

    @property
    def depth_edges(self) -> np.ndarray:
        """Cumulative layer boundaries in X0, ``[n_layers + 1]``."""
        return np.concatenate([[0.0], np.cumsum(self.layer_x0)])


def _ds1_depth(n_layers: int, thickness: dict[int, float]) -> tuple[float, ...]:
    return tuple(float(thickness.get(i, 0.0)) for i in range(n_layers))


_MODELS: dict[str, ShowerModel] = {
    # ATLAS-like barrel at |eta| ~ 0.2: presampler, strips, middle, back, then the tile calorimeter.
    "ds1-photons": ShowerModel(
        layer_x0=_ds1_depth(24, {0: 2.0, 1: 4.5, 2: 16.0, 3: 2.5, 12: 40.0}),
        moliere_mm=40.0, critical_mev=10.0, z_eff=82.0, discrete_energies=True,
    ),
    # Stand-in: the EM profile on a stretched depth scale so energy reaches the hadronic layers.
    "ds1-pions": ShowerModel(
        layer_x0=_ds1_depth(24, {0: 0.5, 1: 1.0, 2: 3.0, 3: 0.5, 12: 4.0, 13: 8.0, 14: 6.0}),
        moliere_mm=80.0, critical_mev=10.0, z_eff=26.0, sampling_fraction=0.5, discrete_energies=True,
    ),
    # Si-W sampling calorimeter: 45 readout layers of ~0.8 X0 (~36 X0 in all).
    "ds2": ShowerModel(layer_x0=(0.8,) * 45, moliere_mm=12.0),
    "ds3": ShowerModel(layer_x0=(0.8,) * 45, moliere_mm=12.0),
}


def shower_model(geometry: CaloGeometry | GeometryName | str) -> ShowerModel:
    """The :class:`ShowerModel` of a geometry (``ds1-photons``, ``ds1-pions``, ``ds2``, ``ds3``)."""
    geo = get_geometry(geometry)
    if geo.name not in _MODELS:
        raise ValueError(f"no shower model for geometry {geo.name!r}")
    return _MODELS[geo.name]


@dataclass(frozen=True)
class GeneratedFile:
    """What :func:`generate_showers` wrote, and how fast."""

    path: Path
    geometry: str
    num_showers: int
    seed: int
    workers: int
    seconds: float

    @property
    def showers_per_second(self) -> float:
        """Throughput of the whole run, writing included."""
        return self.num_showers / self.seconds if self.seconds > 0 else float("inf")


# -- physics ------------------------------------------------------------------------------------


def sample_incident_energies(n: int, geometry: CaloGeometry | str, rng: np.random.Generator) -> np.ndarray:
    """Incident energies (MeV, float32): dataset 1's 15 discrete energies 2^8..2^22, chosen
    uniformly, or log-uniform in 1 GeV .. 1 TeV for datasets 2 and 3."""
    if shower_model(geometry).discrete_energies:
        return np.exp2(rng.integers(8, 23, size=n)).astype(np.float32)
    return (10.0 ** rng.uniform(3.0, 6.0, size=n)).astype(np.float32)


def _longitudinal(e_mev: np.ndarray, m: ShowerModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # GFlash homogeneous-medium parameters: correlated log-normal T_max and alpha per shower.
    ln_y = np.log(e_mev / m.critical_mev)
    mean_ln_t = np.log(np.maximum(ln_y - 0.858, 0.5))
    mean_ln_a = np.log(0.21 + (0.492 + 2.38 / m.z_eff) * ln_y)
    sigma_ln_t = 1.0 / np.maximum(-1.4 + 1.26 * ln_y, 1.0)
    sigma_ln_a = 1.0 / np.maximum(-0.58 + 0.86 * ln_y, 1.0)
    rho = np.clip(0.705 - 0.023 * ln_y, -1.0, 1.0)
    z1, z2 = rng.standard_normal((2, len(e_mev)))
    t_max = np.exp(mean_ln_t + sigma_ln_t * z1)
    alpha = np.maximum(np.exp(mean_ln_a + sigma_ln_a * (rho * z1 + np.sqrt(1 - rho**2) * z2)), 1.05)
    return t_max, alpha


def _radial_scale(tau: np.ndarray, ln_e: np.ndarray, z: float, rng: np.random.Generator) -> np.ndarray:
    # GFlash radial profile: pick core or tail per spot, return its scale radius (Moliere units).
    f32 = np.float32
    r_core = (f32(0.0251) + f32(0.00319) * ln_e) + f32(0.1162 - 0.000381 * z) * tau
    k4 = f32(0.3585) + f32(0.0421) * ln_e
    r_tail = f32(0.659 - 0.00309 * z) * (np.exp(f32(-2.59) * (tau - f32(0.645))) + np.exp(k4 * (tau - f32(0.645))))
    x = (f32(0.401 + 0.00187 * z) - tau) / (f32(1.313) - f32(0.0686) * ln_e)
    p_core = np.clip(f32(2.632 - 0.00094 * z) * np.exp(x - np.exp(x)), f32(0), f32(1))
    return np.where(rng.random(len(tau), dtype=np.float32) < p_core, r_core, r_tail)


def _simulate_step(e_mev: np.ndarray, geo: CaloGeometry, m: ShowerModel, rng: np.random.Generator) -> np.ndarray:
    # Per-shower quantities in float64, per-spot ones in float32: spots are the bulk of the work
    # and float32 transcendental functions are several times faster (SIMD) at ample precision.
    f32 = np.float32
    n = len(e_mev)
    e_gev = e_mev / 1000.0
    t_max, alpha = _longitudinal(e_mev, m, rng)
    beta = (alpha - 1.0) / t_max

    mean_spots = m.spots_per_gev * e_gev**0.876
    n_spots = rng.poisson(mean_spots)
    shower = np.repeat(np.arange(n), n_spots)
    n_total = int(n_spots.sum())

    depth = rng.standard_gamma(alpha.astype(f32)[shower], dtype=f32) / beta.astype(f32)[shower]  # X0
    spot_mean = (m.sampling_fraction * e_mev / mean_spots / m.spot_shape).astype(f32)
    energy = rng.standard_gamma(f32(m.spot_shape), size=n_total, dtype=f32) * spot_mean[shower]
    # Clamp the relative depth: the tail radius grows exponentially with it and would overflow.
    tau = np.minimum(depth / t_max.astype(f32)[shower], f32(4.0))
    scale = _radial_scale(tau, np.log(e_gev).astype(f32)[shower], m.z_eff, rng)
    u = rng.random(n_total, dtype=f32)
    r = f32(m.moliere_mm) * scale * np.sqrt(u / (f32(1.0) - u))  # inverse CDF of 2rR^2/(r^2+R^2)^2
    phi = rng.random(n_total, dtype=f32) * f32(2 * np.pi)
    axis = rng.normal(0.0, m.axis_jitter_mm, (2, n)).astype(f32)
    x = axis[0][shower] + r * np.cos(phi)
    y = axis[1][shower] + r * np.sin(phi)

    edges = m.depth_edges.astype(f32)
    if len(set(m.layer_x0)) == 1:  # equal layers (ds2, ds3): a division instead of a search
        layer = (depth * f32(1.0 / m.layer_x0[0])).astype(np.int64)
    else:  # searchsorted "right" skips the zero-thickness layers of dataset 1
        layer = np.searchsorted(edges, depth, side="right") - 1
    layer[depth >= edges[-1]] = -1  # longitudinal leakage
    voxel = geo.locate(layer, np.arctan2(y, x), np.hypot(x, y))
    keep = voxel >= 0
    flat = shower[keep] * geo.n_voxels + voxel[keep]
    out = np.bincount(flat, weights=energy[keep], minlength=n * geo.n_voxels).astype(np.float32)
    out[out < READOUT_THRESHOLD_MEV] = 0.0
    return out.reshape(n, geo.n_voxels)


def simulate_showers(
    incident_energies: np.ndarray,
    *,
    geometry: CaloGeometry | GeometryName | str,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Simulate one shower per incident energy, vectorised over showers.

    Args:
        incident_energies: ``[N]`` or ``[N, 1]`` energies in MeV.
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2``, ``ds3`` or a :class:`CaloGeometry`.
        seed: an integer seed or a numpy ``Generator`` (consumed).

    Returns:
        float32 ``[N, n_voxels]`` voxel energies in MeV, in the geometry's voxel order.
    """
    geo = get_geometry(geometry)
    m = shower_model(geo)
    e = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    if e.size and not (np.isfinite(e).all() and (e > 0).all()):
        raise ValueError("incident energies must be finite and positive")
    rng = np.random.default_rng(seed)
    out = np.zeros((len(e), geo.n_voxels), dtype=np.float32)
    # Steps bounded by spots and by accumulator cells keep memory flat from 1 GeV to 4 TeV and
    # from ds1 to ds3; the step boundaries depend only on the energies, so results stay seeded.
    spots = np.cumsum(m.spots_per_gev * (e / 1000.0) ** 0.876)
    max_rows = max(1, _MAX_CELLS_PER_STEP // geo.n_voxels)
    start = 0
    while start < len(e):
        base = spots[start - 1] if start else 0.0
        stop = int(np.searchsorted(spots, base + _MAX_SPOTS_PER_STEP, side="right"))
        stop = min(max(start + 1, stop), start + max_rows)
        out[start:stop] = _simulate_step(e[start:stop], geo, m, rng)
        start = stop
    return out


def _partition(geometry: str, seed: int, index: int, size: int) -> tuple[int, np.ndarray, np.ndarray]:
    # One task: its own generator from (seed, index), so results do not depend on who runs it.
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    energies = sample_incident_energies(size, geometry, rng)
    return index, energies, simulate_showers(energies, geometry=geometry, seed=rng)


# -- driver -------------------------------------------------------------------------------------


def _progress(enabled: bool, total: int, label: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled,
    )
    task = progress.add_task(label, total=total, rate="")
    return progress, task


def generate_showers(
    out: str | os.PathLike,
    *,
    geometry: CaloGeometry | GeometryName | str,
    num_showers: int,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> GeneratedFile:
    """Generate parametrised showers into a CaloChallenge HDF5 file (written atomically).

    Args:
        out: the output ``.hdf5`` file; replaced if it exists.
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2`` or ``ds3``.
        num_showers: number of showers (>= 1).
        seed: the run's seed (default 0). Same seed and ``num_showers`` give an identical file
            for any ``workers``.
        workers: worker processes (default 1: in this process, no pool).
        progress: show a progress bar with showers/s on stderr (default True).

    Returns:
        A :class:`GeneratedFile` with the path, counts and the time taken.

    Raises:
        GenerateError: (a ``ValueError``) ``num_showers`` or ``workers`` below 1, a negative
            seed, an unknown geometry, or an output path whose directory does not exist.
    """
    if not isinstance(geometry, CaloGeometry) and geometry not in GEOMETRY_NAMES:
        raise GenerateError(f"unknown calorimeter geometry {geometry!r}: expected one of {', '.join(GEOMETRY_NAMES)}")
    geo = get_geometry(geometry)
    shower_model(geo)
    num_showers, workers, seed = int(num_showers), int(workers), int(seed)
    if num_showers < 1:
        raise GenerateError(f"num_showers must be at least 1, got {num_showers}")
    if workers < 1:
        raise GenerateError(f"workers must be at least 1, got {workers}")
    if seed < 0:
        raise GenerateError(f"seed must be non-negative, got {seed}")
    out = Path(out)
    if not out.parent.is_dir():
        raise GenerateError(f"{out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise GenerateError(f"{out}: is a directory, expected a file path")

    sizes = [min(PARTITION_SIZE, num_showers - s) for s in range(0, num_showers, PARTITION_SIZE)]
    attrs = {"generator": "pcdata.generate.showers (GFlash-style parametrisation)", "geometry": geo.name, "seed": seed}
    start_time = time.perf_counter()
    bar, task = _progress(progress, num_showers, f"{geo.name} showers")
    with bar, CaloChallengeWriter(out, n_showers=num_showers, n_voxels=geo.n_voxels, attrs=attrs) as writer:

        def consume(index: int, energies: np.ndarray, showers: np.ndarray) -> None:
            writer.write(index * PARTITION_SIZE, energies, showers)
            done = index * PARTITION_SIZE + len(showers)
            rate = done / max(time.perf_counter() - start_time, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} showers/s")

        if workers == 1:
            for i, size in enumerate(sizes):
                consume(*_partition(geo.name, seed, i, size))
        else:
            ctx = multiprocessing.get_context("spawn")  # fork is unsafe with threads (torch, h5py)
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                # A bounded window of tasks, consumed in order: memory stays flat and the file is
                # written in row order (byte-identical for any number of workers).
                pending: deque[cf.Future] = deque()
                try:
                    for i, size in enumerate(sizes):
                        pending.append(pool.submit(_partition, geo.name, seed, i, size))
                        if len(pending) >= 2 * workers:
                            consume(*pending.popleft().result())
                    while pending:
                        consume(*pending.popleft().result())
                except BaseException:
                    # Do not let the pool's exit wait for queued partitions after a failure or ^C.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    return GeneratedFile(out, geo.name, num_showers, seed, workers, time.perf_counter() - start_time)
