"""CaloChallenge high-level shower features and separation powers, as the official evaluator.

The official evaluation (``evaluate.py`` + ``HighLevelFeatures.py`` of the CaloChallenge homepage
repository) thresholds both samples, computes per-shower features, fills one histogram per
feature and layer with fixed or reference-derived bins and reports the separation power of each
pair of histograms. This module computes the same numbers with the same float arithmetic, so
that they agree with the official code on the same files (to float rounding, and bit for bit
where the operations are the same):

- :func:`threshold` zeroes voxels below the dataset's readout threshold (strict ``<``, compared
  in the showers' own dtype, as numpy does with a Python float).
- :func:`compute_features` works on a block of showers (``[B, n_voxels]``): E_tot, energy per
  layer (sums in the showers' dtype, numpy's pairwise order), sparsity, centres of energy and
  widths in eta, phi (angle-binned layers) and r (every layer with voxels), in float64; the
  bin centres are computed with the official expressions (``a + (b - a) / 2`` for eta/phi,
  ``(a + b) * 0.5`` for r). Blocks concatenate with :meth:`ShowerFeatures.concatenate`, so a
  sample of any size is processed in bounded memory.
- :func:`histograms` lists every histogram in the official order under the official label
  (``Etot / Einc``, ``E layer 0``, ..., ``Voxel distribution``) with its bin rule, plus the
  paper's sparsity, EC r and width r histograms (``official=False``);
  :func:`separation_powers` evaluates them all.
- :func:`high_level_vector` is the official 362-column (ds2/ds3) feature array of the
  high-level classifier, FPD and KPD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from pcdata.geometry.calo import CaloGeometry, get_geometry

__all__ = [
    "THRESHOLD_MEV",
    "ShowerFeatures",
    "Histogram",
    "threshold",
    "compute_features",
    "histograms",
    "separation_power",
    "separation_powers",
    "voxel_edges",
    "high_level_vector",
    "high_level_names",
]

#: The official per-voxel thresholds (MeV): 1 MeV for dataset 1, 0.5 keV / 0.033 (the sampling
#: fraction) = 15.15 keV for datasets 2 and 3. Both samples are thresholded before anything else.
THRESHOLD_MEV = {"ds1-photons": 1.0, "ds1-pions": 1.0, "ds2": 0.5e-3 / 0.033, "ds3": 0.5e-3 / 0.033}

# The official code's 1e-16 guard against empty layers: EC and width of an empty layer are 0.
_EPS = 1e-16


def threshold(showers: np.ndarray, geometry: CaloGeometry | str) -> np.ndarray:
    """Voxels below the geometry's threshold set to 0 (a new array, same dtype)."""
    thr = THRESHOLD_MEV[get_geometry(geometry).name]
    return np.where(showers < thr, np.zeros_like(showers), showers)


def _alpha_layers(geo: CaloGeometry) -> tuple[int, ...]:
    """The layers binned in angle (the official ``layersBinnedInAlpha``): EC and widths in eta/phi."""
    return tuple(layer for layer in geo.active_layers if geo.n_alpha[layer] > 1)


def _mid(edges) -> np.ndarray:
    # XMLHandler.get_midpoint: a + (b - a) / 2 (not (a + b) / 2: the last bit can differ).
    return np.array([edges[i] + float(edges[i + 1] - edges[i]) / 2 for i in range(len(edges) - 1)])


def _layer_tables(geo: CaloGeometry, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-voxel (eta, phi, r) of one layer in voxel order (angle outer, radius inner), built with
    the official expressions."""
    edges = [float(v) for v in geo.r_edges[layer]]
    n_alpha = geo.n_alpha[layer]
    r_mid = _mid(edges)
    alpha_mid = _mid(np.linspace(-np.pi, np.pi, n_alpha + 1))
    r_list = np.tile(r_mid, n_alpha)
    a_list = np.repeat(alpha_mid, len(r_mid))
    eta, phi = r_list * np.cos(a_list), r_list * np.sin(a_list)
    # HighLevelFeatures.radial_center_mult: (a + b) * 0.5, repeated for every angle bin.
    r_centre = np.tile(np.array([(edges[i] + edges[i + 1]) * 0.5 for i in range(len(edges) - 1)]), n_alpha)
    return eta, phi, r_centre


@dataclass(frozen=True)
class ShowerFeatures:
    """High-level features of a sample of showers (thresholded first), one row per shower.

    Columns follow the geometry's layers with voxels (``layers``) or its angle-binned layers
    (``alpha_layers``). ``incident`` keeps the file's or store's dtype and ``e_tot``/``e_layer``
    the showers' dtype, as in the official code (``E_tot / E_inc`` is then computed in the same
    precision).

    Attributes:
        geometry: the geometry name.
        incident: ``[N]`` incident energies (MeV).
        e_tot: ``[N]`` total deposited energy.
        e_layer, sparsity, ec_r, width_r: ``[N, len(layers)]``.
        ec_eta, ec_phi, width_eta, width_phi: ``[N, len(alpha_layers)]``.
        row_max: ``[N]`` the largest thresholded voxel energy of each shower, in the showers'
            dtype: :attr:`voxel_max` of a sample or a subset is the upper edge of the voxel
            histogram when that sample is the reference.
    """

    geometry: str
    incident: np.ndarray
    e_tot: np.ndarray
    e_layer: np.ndarray
    sparsity: np.ndarray
    ec_r: np.ndarray
    width_r: np.ndarray
    ec_eta: np.ndarray
    ec_phi: np.ndarray
    width_eta: np.ndarray
    width_phi: np.ndarray
    row_max: np.ndarray

    _ROWS = ("incident", "e_tot", "e_layer", "sparsity", "ec_r", "width_r", "ec_eta", "ec_phi", "width_eta",
             "width_phi", "row_max")

    def __len__(self) -> int:
        return len(self.e_tot)

    @property
    def layers(self) -> tuple[int, ...]:
        """Ids of the layers with voxels (the columns of ``e_layer``)."""
        return get_geometry(self.geometry).active_layers

    @property
    def alpha_layers(self) -> tuple[int, ...]:
        """Ids of the layers binned in angle (the columns of ``ec_eta``)."""
        return _alpha_layers(get_geometry(self.geometry))

    @property
    def voxel_max(self) -> np.generic:
        """The largest voxel of the sample as a numpy scalar of the showers' dtype (the official
        code takes the log10 of the reference's maximum in that dtype); 0 for no showers."""
        return self.row_max.max() if len(self.row_max) else np.zeros((), self.row_max.dtype)[()]

    def subset(self, index: np.ndarray) -> "ShowerFeatures":
        """The rows ``index``."""
        return ShowerFeatures(self.geometry, *(getattr(self, k)[index] for k in self._ROWS))

    @staticmethod
    def concatenate(parts: Iterable["ShowerFeatures"]) -> "ShowerFeatures":
        """Rows of several blocks of the same geometry, in order."""
        parts = list(parts)
        if not parts:
            raise ValueError("no feature blocks to concatenate")
        return ShowerFeatures(parts[0].geometry, *(np.concatenate([getattr(p, k) for p in parts]) for k in
                                                   ShowerFeatures._ROWS))

    def column(self, name: str, layer: int | None = None) -> np.ndarray:
        """One feature, for one layer id where the feature is per layer."""
        values = getattr(self, name)
        if layer is None:
            return values
        layers = self.alpha_layers if name in ("ec_eta", "ec_phi", "width_eta", "width_phi") else self.layers
        return values[:, layers.index(layer)]


def _empty_features(geo: CaloGeometry, inc_dtype, sh_dtype) -> ShowerFeatures:
    n_l = len(geo.active_layers)
    n_a = len(_alpha_layers(geo))
    z = lambda k, dt=np.float64: np.zeros((0, k), dtype=dt)  # noqa: E731
    return ShowerFeatures(geo.name, np.zeros(0, inc_dtype), np.zeros(0, sh_dtype), z(n_l, sh_dtype), z(n_l), z(n_l),
                          z(n_l), z(n_a), z(n_a), z(n_a), z(n_a), np.zeros(0, sh_dtype))


def _moments(weights: np.ndarray, energy: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The official centre and width: sum(w E) / (sum(E) + 1e-16) and
    # sqrt(max(sum(w w E) / (sum(E) + 1e-16) - centre^2, 0)), same operation order.
    denom = total + _EPS
    centre = (weights * energy).sum(axis=-1) / denom
    second = (weights * weights * energy).sum(axis=-1) / denom
    return centre, np.sqrt((second - centre ** 2).clip(min=0.0))


def compute_features(showers: np.ndarray, incident: np.ndarray, geometry: CaloGeometry | str, *,
                     thresholded: bool = False) -> ShowerFeatures:
    """The official high-level features of a block of showers.

    Args:
        showers: ``[B, n_voxels]`` voxel energies (MeV) in the geometry's voxel order, float32
            as in the official files (float64 works too, with float64 sums).
        incident: ``[B]`` or ``[B, 1]`` incident energies (MeV); the dtype is kept.
        geometry: the geometry or its name.
        thresholded: the showers are already thresholded (skip :func:`threshold`).

    Returns:
        :class:`ShowerFeatures` of the block.

    Raises:
        ValueError: shapes that disagree with each other or the geometry.
    """
    geo = get_geometry(geometry)
    showers = np.asarray(showers)
    if showers.ndim != 2 or showers.shape[1] != geo.n_voxels:
        raise ValueError(f"showers must have shape [N, {geo.n_voxels}] for {geo.name}, got {list(showers.shape)}")
    incident = np.asarray(incident).reshape(-1)
    if len(incident) != len(showers):
        raise ValueError(f"{len(incident)} incident energies for {len(showers)} showers")
    if not len(showers):
        return _empty_features(geo, incident.dtype, showers.dtype)
    x = showers if thresholded else threshold(showers, geo)
    layers = geo.active_layers
    alpha = _alpha_layers(geo)
    out: dict[str, np.ndarray] = {}
    if geo.is_regular:
        out.update(_regular(x, geo))
    else:
        out.update(_by_layer(x, geo, layers, alpha))
    return ShowerFeatures(geo.name, incident, x.sum(axis=-1), out["e_layer"], out["sparsity"], out["ec_r"],
                          out["width_r"], out["ec_eta"], out["ec_phi"], out["width_eta"], out["width_phi"],
                          x.max(axis=-1))


def _by_layer(x: np.ndarray, geo: CaloGeometry, layers, alpha) -> dict[str, np.ndarray]:
    # One layer at a time, as HighLevelFeatures.CalculateFeatures: for irregular geometries (ds1).
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("e_layer", "sparsity", "ec_r", "width_r", "ec_eta",
                                                         "ec_phi", "width_eta", "width_phi")}
    for layer in layers:
        energy = x[:, geo.layer_offsets[layer]:geo.layer_offsets[layer + 1]]
        total = energy.sum(axis=-1)
        cols["e_layer"].append(total)
        cols["sparsity"].append(1.0 - (energy > 0).mean(axis=-1))
        eta, phi, r = _layer_tables(geo, layer)
        for key, value in zip(("ec_r", "width_r"), _moments(r, energy, total)):
            cols[key].append(value)
        if layer in alpha:
            for key, value in zip(("ec_eta", "width_eta"), _moments(eta, energy, total)):
                cols[key].append(value)
            for key, value in zip(("ec_phi", "width_phi"), _moments(phi, energy, total)):
                cols[key].append(value)
    n = len(x)
    return {k: (np.stack(v, axis=1) if v else np.zeros((n, 0))) for k, v in cols.items()}


def _regular(x: np.ndarray, geo: CaloGeometry) -> dict[str, np.ndarray]:
    # Every layer has the same binning (ds2, ds3): one [B, L, V] view, each reduction over the
    # contiguous last axis, which numpy sums in the same pairwise order as the per-layer slices.
    n_layers, n_alpha, n_r = geo.shape
    e = x.reshape(len(x), n_layers, n_alpha * n_r)
    total = e.sum(axis=-1)
    eta, phi, r = _layer_tables(geo, 0)
    ec_r, width_r = _moments(r, e, total)
    ec_eta, width_eta = _moments(eta, e, total)
    ec_phi, width_phi = _moments(phi, e, total)
    return {"e_layer": total, "sparsity": 1.0 - (e > 0).mean(axis=-1), "ec_r": ec_r, "width_r": width_r,
            "ec_eta": ec_eta, "ec_phi": ec_phi, "width_eta": width_eta, "width_phi": width_phi}


# -- histograms and separation power -----------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """One histogram of the evaluation.

    Attributes:
        label: the official label (``E layer 12``), as in ``histogram_chi2_<ds>.txt``.
        feature: a :class:`ShowerFeatures` field (``e_layer``), or ``etot_einc`` or ``voxel``.
        layer: the layer id for per-layer features.
        official: written by the official ``hist-chi`` mode (False: the paper's extra sparsity,
            EC r and width r histograms, binned as the official plotting helpers).
        edges: a function of the reference values giving the bin edges.
        energy_range: for dataset 1's ``Etot / Einc at E = ...``: showers with E_inc in
            ``[low, high)`` only.
    """

    label: str
    feature: str
    layer: int | None
    official: bool
    edges: Callable[[np.ndarray], np.ndarray]
    energy_range: tuple[float, float] | None = None

    def values(self, features: ShowerFeatures) -> np.ndarray:
        """The histogrammed values of one sample (not for ``voxel``)."""
        if self.feature == "etot_einc":
            values = features.e_tot / features.incident
            if self.energy_range is not None:
                low, high = self.energy_range
                keep = (features.incident >= low) & (features.incident < high)
                values = values[keep]
            return values
        return features.column(self.feature, self.layer)


def _fixed(low: float, high: float, n: int) -> Callable[[np.ndarray], np.ndarray]:
    edges = np.linspace(low, high, n)
    return lambda _ref: edges


def _log_to_max(low: float, n: int) -> Callable[[np.ndarray], np.ndarray]:
    # Log bins from the threshold to the reference's maximum (official E layer and voxel bins).
    return lambda ref: np.logspace(np.log10(low), np.log10(ref.max() if len(ref) else low), n)


def voxel_edges(geometry: CaloGeometry | str, reference_max: float) -> np.ndarray:
    """The official voxel-spectrum bins: 49 log bins from the threshold to the reference's maximum."""
    low = THRESHOLD_MEV[get_geometry(geometry).name]
    return np.logspace(np.log10(low), np.log10(reference_max), 50)


def histograms(geometry: CaloGeometry | str) -> tuple[Histogram, ...]:
    """Every histogram of the evaluation, official ones first in the official order.

    Official (``hist-chi``): ``Etot / Einc``; ``E layer l`` per layer with voxels; ``EC Eta``,
    ``EC Phi``, ``Width Eta``, ``Width Phi layer l`` per angle-binned layer; for dataset 1 the 15
    ``Etot / Einc at E = ...`` histograms; ``Voxel distribution``. Then the paper's extras:
    ``Sparsity layer l``, ``EC r layer l``, ``Width r layer l``.
    """
    geo = get_geometry(geometry)
    ds1 = geo.name.startswith("ds1")
    thr = THRESHOLD_MEV[geo.name]
    layers = geo.active_layers
    alpha = _alpha_layers(geo)
    out = [Histogram("Etot / Einc", "etot_einc", None, True, _fixed(0.5, 1.5, 101))]
    out += [Histogram(f"E layer {layer}", "e_layer", layer, True, _log_to_max(thr, 40)) for layer in layers]

    def ec_lim(layer):
        return (-30.0, 30.0) if not ds1 else (-500.0, 500.0) if layer in (12, 13) else (-100.0, 100.0)

    def width_lim(layer):
        return (0.0, 30.0) if not ds1 else (0.0, 400.0) if layer in (12, 13) else (0.0, 100.0)

    for name, feature, lim in (("EC Eta", "ec_eta", ec_lim), ("EC Phi", "ec_phi", ec_lim),
                               ("Width Eta", "width_eta", width_lim), ("Width Phi", "width_phi", width_lim)):
        out += [Histogram(f"{name} layer {layer}", feature, layer, True, _fixed(*lim(layer), 101)) for layer in alpha]
    if ds1:
        targets = 2 ** np.linspace(8, 23, 16)
        bins = _fixed(0.4, 1.4, 21)
        for i in range(len(targets) - 1):
            if i > 3 and geo.name == "ds1-photons":
                bins = _fixed(0.9, 1.1, 21)  # the official code narrows the photon bins from 4096 MeV on
            out.append(Histogram(f"Etot / Einc at E = {targets[i]}", "etot_einc", None, True, bins,
                                 (float(targets[i]), float(targets[i + 1]))))
    out.append(Histogram("Voxel distribution", "voxel", None, True, lambda ref: voxel_edges(geo, ref.max())))

    def r_lim(layer, ds23):
        return ds23 if not ds1 else (0.0, 1500.0) if layer in (12, 13, 14) else (0.0, 500.0)

    out += [Histogram(f"Sparsity layer {layer}", "sparsity", layer, False, _fixed(0.0, 1.0, 21)) for layer in layers]
    out += [Histogram(f"EC r layer {layer}", "ec_r", layer, False, _fixed(*r_lim(layer, (0.0, 42.0)), 101))
            for layer in layers]
    out += [Histogram(f"Width r layer {layer}", "width_r", layer, False, _fixed(*r_lim(layer, (0.0, 20.0)), 101))
            for layer in layers]
    return tuple(out)


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # numpy.histogram(density=True): n / db / n.sum(), in this order (0/0 = NaN for no entries).
    db = np.diff(edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / db / counts.sum()


def separation_power(ref_density: np.ndarray, gen_density: np.ndarray, edges: np.ndarray) -> float:
    """The official separation power (triangular discrimination, eq. 15 of arXiv:2009.03796) of two
    density histograms on the same bins: ``0.5 * sum((h1 - h2)^2 / (h1 + h2 + 1e-16))`` with
    ``h = density * bin width``; 0 for identical, 1 for disjoint, NaN when a histogram is empty."""
    h1, h2 = ref_density * np.diff(edges), gen_density * np.diff(edges)
    ret = (h1 - h2) ** 2
    ret /= h1 + h2 + _EPS
    return float(0.5 * ret.sum())


def separation_powers(reference: ShowerFeatures, generated: ShowerFeatures,
                      voxel_counts: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                      ) -> dict[str, dict]:
    """Separation power of every histogram of :func:`histograms`, in order.

    Args:
        reference: the reference (real) sample's features: its values define the log bins.
        generated: the other sample's.
        voxel_counts: given the voxel bin edges, the in-range bin counts of every voxel of the
            reference and of the generated sample (the voxel spectrum is accumulated block by
            block from the voxels, which the features do not hold); None leaves it out.

    Returns:
        ``{label: {"value", "edges", "reference", "generated", "official"}}`` with the
        separation power and both density histograms (NaN, and None for the histograms, where
        a histogram is empty or has no bins).
    """
    out = {}
    for hist in histograms(reference.geometry):
        if hist.feature == "voxel" and voxel_counts is None:
            continue
        if hist.feature != "voxel":
            ref, gen = hist.values(reference), hist.values(generated)
        with np.errstate(divide="ignore", invalid="ignore"):
            edges = voxel_edges(reference.geometry, reference.voxel_max) if hist.feature == "voxel" else hist.edges(ref)
        if not (np.isfinite(edges).all() and (np.diff(edges) > 0).all()):
            # log bins up to a reference maximum at or below the threshold (a layer the
            # reference never reaches): no bins, so no histogram and no number
            out[hist.label] = {"value": float("nan"), "edges": None, "reference": None, "generated": None,
                               "official": hist.official}
            continue
        if hist.feature == "voxel":
            c_ref, c_gen = voxel_counts(edges)
        else:
            c_ref, c_gen = np.histogram(ref, edges)[0], np.histogram(gen, edges)[0]
        d_ref, d_gen = _density(c_ref, edges), _density(c_gen, edges)
        out[hist.label] = {"value": separation_power(d_ref, d_gen, edges), "edges": edges, "reference": d_ref,
                           "generated": d_gen, "official": hist.official}
    return out


# -- the official high-level feature vector ----------------------------------------------------


def high_level_vector(features: ShowerFeatures) -> np.ndarray:
    """The official high-level array (cls-high, FPD, KPD) as float64 ``[N, n]``.

    Columns: ``log10 E_inc``, ``log10(E_layer + 1e-8)`` per layer, ``EC_eta/100``, ``EC_phi/100``,
    ``width_eta/100``, ``width_phi/100`` per angle-binned layer, ``log10(E_tot + 1e-8)``,
    sparsity per layer, ``EC_r/100``, ``width_r/100`` per layer: 362 for ds2/ds3. Each piece is
    computed in its own dtype before the float64 concatenation, as the official code does.
    """
    f = features
    parts = [np.log10(f.incident.reshape(-1, 1)), np.log10(f.e_layer + 1e-8), f.ec_eta / 1e2, f.ec_phi / 1e2,
             f.width_eta / 1e2, f.width_phi / 1e2, np.log10(f.e_tot.reshape(-1, 1) + 1e-8), f.sparsity,
             f.ec_r / 1e2, f.width_r / 1e2]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=1)


def high_level_names(geometry: CaloGeometry | str) -> list[str]:
    """Column names of :func:`high_level_vector`."""
    geo = get_geometry(geometry)
    layers = geo.active_layers
    alpha = _alpha_layers(geo)
    names = ["log10_einc"] + [f"log10_e_layer_{l}" for l in layers]
    for kind in ("ec_eta", "ec_phi", "width_eta", "width_phi"):
        names += [f"{kind}_{l}" for l in alpha]
    names += ["log10_e_tot"] + [f"sparsity_{l}" for l in layers] + [f"ec_r_{l}" for l in layers]
    return names + [f"width_r_{l}" for l in layers]

