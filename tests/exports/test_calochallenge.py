"""Tests of pcdata.exports.calochallenge: the official layout, read the way the official
CaloChallenge evaluator reads it; exact round trip; coinciding hits summed; refusals.

What the evaluator (``code/evaluate.py`` and ``code/HighLevelFeatures.py`` of the CaloChallenge
homepage repository) does with a submitted file, and what :class:`EvaluatorView` below redoes
independently (no code of theirs is used):

- opens it with ``h5py.File(path, "r")`` and checks ``incident_energies.shape[0] ==
  showers.shape[0]`` and ``showers.shape[1]`` against 368 / 533 / 6480 / 40500 for datasets
  1-photons / 1-pions / 2 / 3;
- reads both datasets whole (``[:]``);
- keeps ``incident_energies`` as a column: ``log10(E_inc)`` is concatenated with the voxels along
  axis 1 for the classifier and ``100 * voxels / E_inc`` broadcasts per row, which needs
  ``[N, 1]``; the histograms use ``E_tot / E_inc.squeeze()``;
- takes the binning from ``binning_dataset_*.xml``: per layer ``n_alpha * n_r`` voxels, angle
  outer and radius inner, voxel positions ``r_mid * cos(alpha_mid)`` ("eta") and
  ``r_mid * sin(alpha_mid)`` ("phi") with angle centres from ``linspace(-pi, pi, n_alpha + 1)``;
- computes the high-level features: total energy, energy per layer that has voxels, and for the
  layers with more than one angle bin the energy-weighted centre and width in eta and phi;
- zeroes voxels below a minimum energy in both files before comparing (newer versions).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from importlib import resources

import h5py
import numpy as np
import pytest

from pcdata import open_store
from pcdata.clouds import Clouds
from pcdata.errors import ExportError
from pcdata.exports import export_calochallenge
from pcdata.generate.showers import simulate_showers
from pcdata.geometry.calo import get_geometry
from pcdata.geometry.voxels import voxels_to_clouds
from pcdata.ingest.calochallenge import calochallenge_template
from pcdata.ingest.jetnet import jetnet_template
from pcdata.sources.calochallenge import write_calochallenge_hdf5
from pcdata.store.reader import Store
from pcdata.store.writer import write_store
from tests.conftest import run_cli

#: The evaluator's own table of voxel counts per dataset.
EVALUATOR_VOXELS = {"ds1-photons": 368, "ds1-pions": 533, "ds2": 6480, "ds3": 40500}
#: Its minimum voxel energies (MeV) applied to both files.
EVALUATOR_MIN_ENERGY = {"ds1-photons": 10.0, "ds1-pions": 10.0, "ds2": 0.5e-3 / 0.033, "ds3": 0.5e-3 / 0.033}
XML = {"ds1-photons": "binning_dataset_1_photons.xml", "ds1-pions": "binning_dataset_1_pions.xml",
       "ds2": "binning_dataset_2.xml", "ds3": "binning_dataset_3.xml"}


class EvaluatorView:
    """The binning as the evaluator derives it from the XML file (written here from the format
    description, independently of :mod:`pcdata.geometry.calo`)."""

    def __init__(self, geometry: str):
        text = resources.files("pcdata.geometry").joinpath("data", XML[geometry]).read_text()
        layers = ET.fromstring(text).find("Bin").findall("Layer")
        self.edges = [0]
        self.relevant, self.in_alpha, self.eta, self.phi = [], [], {}, {}
        for layer in sorted(layers, key=lambda el: int(el.get("id"))):
            lid = int(layer.get("id"))
            r = [float(v) for v in layer.get("r_edges").split(",")]
            n_alpha = int(layer.get("n_bin_alpha"))
            n_r = len(r) - 1
            self.edges.append(self.edges[-1] + n_r * n_alpha)
            if n_r == 0:
                continue
            self.relevant.append(lid)
            if n_alpha > 1:
                self.in_alpha.append(lid)
            a_edges = np.linspace(-math.pi, math.pi, n_alpha + 1)
            a_mid = [(a_edges[j] + a_edges[j + 1]) / 2 for j in range(n_alpha)]
            r_mid = [(r[i] + r[i + 1]) / 2 for i in range(n_r)]
            pos = [(rm * math.cos(am), rm * math.sin(am)) for am in a_mid for rm in r_mid]  # r inner
            self.eta[lid] = np.array([p[0] for p in pos])
            self.phi[lid] = np.array([p[1] for p in pos])

    @property
    def n_voxels(self) -> int:
        return self.edges[-1]

    def features(self, showers: np.ndarray) -> dict[str, np.ndarray]:
        """Etot, E per layer, centre and width in eta/phi per alpha-binned layer."""
        out = {"E_tot": showers.sum(axis=-1)}
        for lid in self.relevant:
            block = showers[:, self.edges[lid] : self.edges[lid + 1]]
            e = block.sum(axis=-1)
            out[f"E_layer_{lid}"] = e
            if lid in self.in_alpha:
                for name, x in (("eta", self.eta[lid]), ("phi", self.phi[lid])):
                    centre = (x * block).sum(axis=-1) / (e + 1e-16)
                    second = (x * x * block).sum(axis=-1) / (e + 1e-16)
                    out[f"EC_{name}_{lid}"] = centre
                    out[f"width_{name}_{lid}"] = np.sqrt(np.clip(second - centre**2, 0, None))
        return out


def evaluator_load(path, geometry: str) -> tuple[np.ndarray, np.ndarray]:
    """Open and check a file as the evaluator does; fail the test where the evaluator would fail."""
    with h5py.File(path, "r") as f:
        assert {"incident_energies", "showers"} <= set(f.keys())
        n = f["incident_energies"].shape[0]
        assert f["showers"].shape[0] == n, "number of energies does not match number of showers"
        assert f["showers"].shape[1] == EVALUATOR_VOXELS[geometry], "showers have the wrong shape"
        showers, energy = f["showers"][:], f["incident_energies"][:]
    assert energy.shape == (n, 1) and energy.dtype.kind == "f" and showers.dtype == np.float32
    # The low-level classifier input: log10(E_inc) | 100 * voxels / E_inc | label, along axis 1.
    cls_input = np.concatenate([np.log10(energy), 100.0 * showers / energy, np.ones_like(energy)], axis=1)
    assert cls_input.shape == (n, EVALUATOR_VOXELS[geometry] + 2) and np.isfinite(cls_input).all()
    return showers, energy


def _shower_store(tmp_path, geometry: str, n: int, seed: int = 0, name: str = "s"):
    rng = np.random.default_rng(seed)
    energies = (10.0 ** rng.uniform(3.0, 5.0, n)).astype(np.float32)
    showers = simulate_showers(energies, geometry=geometry, seed=rng)
    write_calochallenge_hdf5(tmp_path / f"{name}.hdf5", energies, showers)
    clouds = voxels_to_clouds(showers, energies, geometry)
    write_store(tmp_path / name, clouds, calochallenge_template(geometry), clouds_per_fragment=max(1, n // 3))
    return tmp_path / name, tmp_path / f"{name}.hdf5", clouds


@pytest.mark.parametrize("geometry", ["ds1-photons", "ds2"])
def test_the_evaluator_reads_the_export_as_it_reads_the_input(tmp_path, geometry):
    store, original, clouds = _shower_store(tmp_path, geometry, 60)
    exported = export_calochallenge(store, tmp_path / "out.hdf5")
    view = EvaluatorView(geometry)
    assert view.n_voxels == EVALUATOR_VOXELS[geometry]
    # The evaluator's voxel positions agree with the binning the store's cells refer to.
    geo = get_geometry(geometry)
    x = geo.voxel_r_centre * np.cos(geo.voxel_alpha_centre)
    for lid in view.relevant:
        np.testing.assert_allclose(view.eta[lid], x[view.edges[lid] : view.edges[lid + 1]], atol=1e-9)

    showers, energy = evaluator_load(exported, geometry)
    ref_showers, ref_energy = evaluator_load(original, geometry)
    assert showers.tobytes() == ref_showers.tobytes() and energy.tobytes() == ref_energy.tobytes()

    ours, ref = view.features(showers), view.features(ref_showers)
    assert ours.keys() == ref.keys() and any(k.startswith("EC_eta") for k in ours)
    for k in ours:
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)
    np.testing.assert_array_equal(ours["E_tot"] / energy.squeeze(), ref["E_tot"] / ref_energy.squeeze())

    # Cross-check against the clouds themselves: energy per layer from the hits.
    layer, e = clouds.points[:, 0].astype(int), clouds.points[:, 3].astype(np.float64)
    cloud = np.repeat(np.arange(len(clouds)), clouds.counts)
    for lid in view.relevant:
        sel = layer == lid
        expected = np.bincount(cloud[sel], weights=e[sel], minlength=len(clouds))
        np.testing.assert_allclose(ours[f"E_layer_{lid}"], expected, rtol=1e-5, atol=1e-6)

    # The evaluator's minimum voxel energy, applied to both files, keeps them equal.
    cut = EVALUATOR_MIN_ENERGY[geometry]
    a, b = np.where(showers < cut, 0, showers), np.where(ref_showers < cut, 0, ref_showers)
    for k, v in view.features(a).items():
        np.testing.assert_array_equal(v, view.features(b)[k], err_msg=k)


def _with_sums(clouds: Clouds) -> Clouds:
    """The per-shower fields a shower store declares besides the incident energy."""
    sums = np.add.reduceat(clouds.points[:, 3].astype(np.float64), clouds.offsets[:-1]) if clouds.num_points else 0
    sums = np.where(clouds.counts > 0, sums, 0.0)
    return Clouds(clouds.points, clouds.offsets, {**clouds.fields, "num_points": clouds.counts.astype(np.int32),
                                                  "energy_sum": sums}, clouds.point_features)


def test_generated_clouds_sum_hits_in_one_cell(tmp_path):
    # Cloud 0: three hits in cell (layer 3, alpha 2, r 4), given out of order, plus one other.
    # Cloud 1: no hits. Cloud 2: one hit on the last voxel.
    points = np.array([
        [3, 2, 4, 1.25], [0, 0, 0, 7.0], [3, 2, 4, 0.5], [3, 2, 4, 2.0],
        [44, 15, 8, 3.0],
    ], dtype=np.float32)
    clouds = _with_sums(Clouds(points, np.array([0, 4, 4, 5]),
                               {"incident_energy": np.array([1000.0, 2000.0, 4000.0], np.float32)},
                               ("layer", "alpha_bin", "r_bin", "energy")))
    write_store(tmp_path / "gen", clouds, calochallenge_template("ds2"))
    showers, energy = evaluator_load(export_calochallenge(tmp_path / "gen", tmp_path / "gen.hdf5"), "ds2")
    assert energy.dtype == np.float64 and energy[:, 0].tolist() == [1000.0, 2000.0, 4000.0]
    cell = 3 * 144 + 2 * 9 + 4
    assert showers[0, cell] == np.float32(3.75) and showers[0, 0] == 7.0
    assert np.count_nonzero(showers[0]) == 2 and not showers[1].any()
    assert showers[2, 6479] == 3.0 and np.count_nonzero(showers[2]) == 1


def test_export_streams_in_blocks_and_exports_one_split(tmp_path, monkeypatch):
    store, original, _ = _shower_store(tmp_path, "ds1-photons", 50)
    monkeypatch.setattr("pcdata.exports.calochallenge.default_block_rows", lambda n_voxels: 7)
    calls, real_take = [], Store.take

    def take(self, indices, **kw):
        calls.append(len(indices))
        return real_take(self, indices, **kw)

    monkeypatch.setattr(Store, "take", take)
    showers, energy = evaluator_load(export_calochallenge(store, tmp_path / "all.hdf5"), "ds1-photons")
    assert calls == [7] * 7 + [1]
    with h5py.File(original) as f:
        assert showers.tobytes() == f["showers"][:].tobytes()
        val = f["showers"][:][open_store(store).split_indices("val")]
    part, _ = evaluator_load(export_calochallenge(store, tmp_path / "val.hdf5", split="val"), "ds1-photons")
    assert part.tobytes() == val.tobytes()


def test_refusals_name_the_store_and_the_problem(tmp_path):
    store, _, _ = _shower_store(tmp_path, "ds1-photons", 10)
    with pytest.raises(ExportError, match="the store holds ds1-photons showers, not ds2"):
        export_calochallenge(store, tmp_path / "x.hdf5", geometry="ds2")
    with pytest.raises(ExportError, match="unknown geometry 'ds9'"):
        export_calochallenge(store, tmp_path / "x.hdf5", geometry="ds9")
    with pytest.raises(ExportError, match="no split 'nope'"):
        export_calochallenge(store, tmp_path / "x.hdf5", split="nope")
    outside = _with_sums(Clouds(np.array([[3, 16, 0, 1.0]], np.float32), np.array([0, 1]),
                                {"incident_energy": np.array([1.0], np.float32)}, ("layer", "alpha_bin", "r_bin", "energy")))
    write_store(tmp_path / "bad", outside, calochallenge_template("ds2"))
    with pytest.raises(ExportError, match=r"clouds 0\.\.0: .*alpha_bin 16.*is not a voxel"):
        export_calochallenge(tmp_path / "bad", tmp_path / "x.hdf5")
    template = jetnet_template(30)
    jets = Clouds(np.zeros((2, 3), np.float32), np.array([0, 2]),
                  {f.name: np.ones(1, f.dtype) for f in template.cloud_features}, ("etarel", "phirel", "ptrel"))
    write_store(tmp_path / "jets", jets, template)
    with pytest.raises(ExportError, match="needs a shower store"):
        export_calochallenge(tmp_path / "jets", tmp_path / "x.hdf5")
    assert not (tmp_path / "x.hdf5").exists()


def test_cli_export_format(tmp_path):
    store, original, _ = _shower_store(tmp_path, "ds1-photons", 20)
    out = tmp_path / "cli.hdf5"
    r = run_cli("pcdata", "export", str(store), "--format", "calochallenge-hdf5", "--out", str(out), check=True)
    assert r.stdout.strip() == f"wrote {out}"
    with h5py.File(out) as a, h5py.File(original) as b:
        assert a["showers"][:].tobytes() == b["showers"][:].tobytes()
        assert a["showers"].compression == "gzip" and a["incident_energies"].shape == (20, 1)
    r = run_cli("pcdata", "export", str(store), "--format", "calochallenge-hdf5", "--out", str(out), "--geometry", "ds3")
    assert r.returncode == 2 and r.stderr.strip().endswith("the store holds ds1-photons showers, not ds3")
