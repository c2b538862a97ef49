"""Tests of pcdata.generate.jets: Pythia 8 + FastJet jets in the JetNet layout.

The samples are generated once per session (a few hundred jets per process, ~10 s on one core);
the physics checks use broad tolerances fit for that size. Reference values: top 173 GeV,
W 80.4 GeV, Z 91.2 GeV; at pT ~ 1 TeV with R = 0.8 and no grooming the underlying event and
final-state radiation push the jet-mass peaks some 5-15 GeV above those masses.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pcdata.errors import PcdataError
from pcdata.errors import GenerateError
from pcdata.generate.jets import JetGenConfig, _matched_jets, _to_jetnet, generate_jets, partition_seed
from pcdata.geometry.jets import jet_from_constituents, jet_from_relative, pxpypze_to_ptetaphim, to_relative
from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block

PCDATA = Path(sys.executable).with_name("pcdata")

# (process, file name as JetNet names it, jets, particles per jet)
SAMPLES = {
    "top": ("t150.hdf5", 300, 150),
    "w": ("w30.hdf5", 300, 30),
    "z": ("z30.hdf5", 200, 30),
    "qcd": ("q30.hdf5", 300, 30),
    # Named so that only the class the generator writes into the file can tell what they hold.
    "g": ("gluons.hdf5", 200, 30),
    "q": ("quarks.hdf5", 200, 30),
}


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("generated_jets")
    out = {}
    for seed, (process, (name, n, p)) in enumerate(SAMPLES.items(), start=11):
        out[process] = generate_jets(d / name, process=process, num_jets=n, num_particles=p, seed=seed, progress=False)
    return out


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["particle_features"][:], f["jet_features"][:]


def _peak(values: np.ndarray, width: float) -> float:
    """Median of the densest window of the given width: a mode estimate robust for a few hundred values."""
    v = np.sort(values)
    right = np.searchsorted(v, v + width)
    i = int(np.argmax(right - np.arange(len(v))))
    return float(np.median(v[i : right[i]]))


# -- the file --------------------------------------------------------------------------------------


def test_files_follow_the_jetnet_layout(samples):
    for process, path in samples.items():
        name, n, p = SAMPLES[process]
        info = inspect_jetnet_file(path)
        assert (info.n_jets, info.num_particles, info.label) == (n, p, "gqtwz".index(name[0]))
        clouds = read_jetnet_block(info, 0, n)  # validates mask prefix, zero padding, num_particles
        assert len(clouds) == n
        pf, jf = _read(path)
        assert pf.dtype == jf.dtype == np.float32
        assert pf.shape == (n, p, 4) and jf.shape == (n, 4)


def test_jets_pass_the_kinematic_windows(samples):
    config = JetGenConfig()
    for path in samples.values():
        pf, jf = _read(path)
        assert np.all((jf[:, 0] >= config.jet_pt_min) & (jf[:, 0] < config.jet_pt_max))
        assert np.all(np.abs(jf[:, 1]) < config.jet_eta_max)
        real = pf[..., 3] == 1
        # Constituents are inside the jet and sorted by pT, hardest first. FastJet measures
        # distances in rapidity, the coordinates use pseudorapidity: a slow massive hadron can be
        # near in rapidity but far in eta, so only the bulk is checked in eta, phi in full.
        dr = np.hypot(pf[..., 0], pf[..., 1])[real]
        assert np.mean(dr < 1.05 * config.jet_radius) > 0.97
        assert np.abs(pf[..., 1][real]).max() < 1.2 * config.jet_radius
        ptrel = pf[..., 2]
        assert np.all(np.diff(ptrel, axis=1)[real[:, 1:]] <= 0)
        assert np.all((pf[..., 1] >= -np.pi) & (pf[..., 1] < np.pi))


def test_truncation_keeps_the_multiplicity(samples):
    pf, jf = _read(samples["w"])
    n = jf[:, 3]
    assert np.all(pf[..., 3].sum(axis=1) == np.minimum(n, 30))
    assert np.mean(n > 30) > 0.5  # most W jets have more than 30 constituents: truncation is exercised


# -- physics ---------------------------------------------------------------------------------------


def test_top_mass_peaks_near_the_top_mass(samples):
    mass = _read(samples["top"])[1][:, 2]
    assert 160 < _peak(mass, 30) < 200
    assert 165 < np.median(mass) < 210


def test_w_and_z_mass_peaks(samples):
    w = _read(samples["w"])[1][:, 2]
    z = _read(samples["z"])[1][:, 2]
    assert 72 < _peak(w, 20) < 100
    assert 80 < _peak(z, 20) < 110
    assert np.median(w) < np.median(z) + 10


def test_qcd_masses_are_lower(samples):
    qcd = _read(samples["qcd"])[1][:, 2]
    top = _read(samples["top"])[1][:, 2]
    assert np.median(qcd) < 0.8 * np.median(top)
    assert np.mean(qcd < 100) > 0.3 > np.mean(top < 100)


def test_multiplicities_are_physical(samples):
    n_top = _read(samples["top"])[1][:, 3]
    n_w = _read(samples["w"])[1][:, 3]
    n_qcd = _read(samples["qcd"])[1][:, 3]
    assert np.all(n_top == np.round(n_top))
    assert 60 < np.median(n_top) < 120 and n_top.min() > 15 and n_top.max() < 300
    assert 30 < np.median(n_w) < 80 and n_w.min() >= 2
    assert 30 < np.median(n_qcd) < 110
    assert np.median(n_top) > np.median(n_w)  # three prongs radiate more than two


def test_gluon_jets_have_more_constituents_than_light_quark_jets(samples):
    # Colour factors: a gluon radiates C_A / C_F = 9/4 times as much as a quark, so at ~1 TeV
    # gluon jets carry clearly more constituents (JetNet: g ~ 60, q ~ 40 on average).
    n_g = _read(samples["g"])[1][:, 3]
    n_q = _read(samples["q"])[1][:, 3]
    assert n_g.mean() > 1.2 * n_q.mean()
    assert np.median(n_g) > np.median(n_q) + 8
    # ... and both lie within the mixed QCD sample's spread
    n_qcd = _read(samples["qcd"])[1][:, 3]
    assert np.median(n_q) < np.median(n_qcd) + 5 and np.median(n_g) > np.median(n_qcd) - 5


def test_the_file_records_its_jetnet_class(samples):
    from pcdata.sources.jetnet import JET_TYPES

    expected = {"top": "t", "w": "w", "z": "z", "g": "g", "q": "q"}
    for process, path in samples.items():
        with h5py.File(path, "r") as f:
            assert f.attrs.get("jet_class") == expected.get(process) and f.attrs["process"] == process
        if process in expected:
            # The attribute wins over a file name that says nothing (gluons.hdf5) or another class.
            assert JET_TYPES[inspect_jetnet_file(path).label] == expected[process]


def test_untruncated_jets_sum_back_to_the_jet(samples):
    pf, jf = (a.astype(np.float64) for a in _read(samples["top"]))
    full = jf[:, 3] <= 150
    assert full.mean() > 0.9
    pf, jf = pf[full], jf[full]
    mask = pf[..., 3] == 1
    etarel, phirel, ptrel = pf[..., 0], pf[..., 1], pf[..., 2]
    # ptrel is relative to the jet's (vector) pT: the vector sum of the ptrel is 1, the scalar sum
    # a little more (by the jet's spread).
    vector = np.hypot((ptrel * np.cos(phirel)).sum(1), (ptrel * np.sin(phirel)).sum(1))
    np.testing.assert_allclose(vector, 1.0, atol=2e-6)
    assert np.all(ptrel.sum(1) >= 1 - 2e-6) and np.all(ptrel.sum(1) < 1.1)
    # The four-vector sum gives back the jet pT and eta exactly (they do not depend on masses);
    # the mass as the massless approximation, just below the true mass.
    pt, eta, mass = jet_from_relative(etarel, phirel, ptrel, jf[:, 0], jf[:, 1], mask)
    np.testing.assert_allclose(pt, jf[:, 0], rtol=2e-6)
    np.testing.assert_allclose(eta, jf[:, 1], atol=2e-5)
    assert np.all(mass <= jf[:, 2] * (1 + 1e-5))
    assert np.median(mass / jf[:, 2]) > 0.95


def test_stored_jets_are_the_four_vector_sums_of_their_constituents():
    jets = list(itertools.islice(_matched_jets("top", 4242, JetGenConfig(), 12), 12))
    pf, jf = _to_jetnet(jets, 150)
    for i, (jet_p4, parts) in enumerate(jets):
        # FastJet's E-scheme jet is the plain four-vector sum of the constituents.
        np.testing.assert_allclose(parts.sum(axis=0), jet_p4, rtol=1e-9, atol=1e-6)
        pt, eta, phi, m = pxpypze_to_ptetaphim(*parts.T)
        jet = jet_from_constituents(pt, eta, phi, m)
        np.testing.assert_allclose([jet.pt, jet.eta, jet.mass, len(parts)], jf[i], rtol=2e-6)
        # The stored relative coordinates are those of the constituents around this jet.
        order = np.argsort(-pt)[:150]
        rel = to_relative(pt[order][None], eta[order][None], phi[order][None], [jet.pt], [jet.eta], [jet.phi])
        k = len(order)
        np.testing.assert_allclose(np.stack(rel, -1)[0], pf[i, :k, :3], rtol=1e-5, atol=1e-6)


# -- reproducibility ------------------------------------------------------------------------------


def test_same_seed_gives_the_same_file_for_any_number_of_workers(tmp_path):
    config = JetGenConfig(jets_per_partition=60)
    files = [
        generate_jets(tmp_path / f"t{w}.hdf5", process="top", num_jets=130, seed=5, workers=w, progress=False, config=config)
        for w in (1, 2)
    ]
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert digests[0] == digests[1]
    pf, jf = _read(files[0])
    # Partitions are seeded apart: no partition repeats another's jets.
    assert len(np.unique(jf[:, 0])) == 130


def test_partition_seeds():
    seeds = [partition_seed(s, k) for s in (0, 1) for k in range(100)]
    assert len(set(seeds)) == len(seeds)
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert partition_seed(7, 3) == partition_seed(7, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(process="gluon"), "process: expected one of top, g, q, qcd, w, z"),
        (dict(num_particles=40), "num_particles: expected 30 or 150"),
        (dict(num_jets=0), "num_jets: expected an integer >= 1"),
        (dict(seed=-1), "seed: expected an integer >= 0"),
        (dict(workers=0), "workers: expected an integer >= 1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(process="top", num_jets=10, num_particles=30) | kwargs
    with pytest.raises(GenerateError, match=match) as err:
        generate_jets(tmp_path / "t30.hdf5", progress=False, **args)
    assert isinstance(err.value, PcdataError) and isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_bad_config_and_output_path(tmp_path):
    with pytest.raises(GenerateError, match="jet_pt_max"):
        JetGenConfig(jet_pt_min=900, jet_pt_max=800)
    with pytest.raises(GenerateError, match="jets_per_partition"):
        JetGenConfig(jets_per_partition=0)
    with pytest.raises(GenerateError, match="does not exist"):
        generate_jets(tmp_path / "missing" / "t30.hdf5", process="top", num_jets=1, progress=False)


# -- the command line ------------------------------------------------------------------------------


def _pcdata(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PCDATA), *args], capture_output=True, text=True, timeout=300)


def test_cli_generates_a_file(tmp_path):
    out = tmp_path / "w30.hdf5"
    proc = _pcdata("generate", "jets", "--process", "w", "--num-jets", "40", "--num-particles", "30",
                   "--seed", "3", "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    # stdout is our one line: no Pythia or FastJet banner leaks through.
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}") and "jets/s" in lines[0]
    info = inspect_jetnet_file(out)
    assert (info.n_jets, info.num_particles) == (40, 30)
    read_jetnet_block(info, 0, 40)


def test_a_generated_file_ingests_as_it_is_whatever_its_name(tmp_path):
    from pcdata import open_store

    out = tmp_path / "top.hdf5"  # a process name, not a JetNet file name
    generate_jets(out, process="top", num_jets=20, seed=4, progress=False)
    proc = subprocess.run([str(PCDATA), "ingest", "jetnet", str(out), "--out", str(tmp_path / "s"), "--workers", "1",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert set(open_store(tmp_path / "s").read().fields["label"].tolist()) == {2}  # t
    proc = subprocess.run([str(PCDATA), "ingest", "jetnet", str(out), "--out", str(tmp_path / "s2"), "--workers", "1",
                           "--label", "w", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"error: --label: 'w' disagrees with {out}, whose jet_class attribute says 't'" in proc.stderr
    assert not (tmp_path / "s2").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--process", "higgs", "--num-jets", "5"], "--process: expected one of top, g, q, qcd, w, z"),
        (["--process", "top", "--num-jets", "5", "--num-particles", "40"], "--num-particles: expected 30 or 150"),
        (["--process", "top", "--num-jets", "0"], "--num-jets: expected an integer >= 1"),
    ],
)
def test_cli_bad_arguments(tmp_path, args, message):
    out = tmp_path / "t30.hdf5"
    proc = _pcdata("generate", "jets", *args, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists()
