import json

import awkward as ak
import h5py
import numpy as np
import pytest

from pcdata import open_store
from tests.conftest import run_cli
from tests.helpers import jetclass_arrays, write_rntuple, write_root

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def jetclass_files(tmp_path_factory, pythia_top150):
    with h5py.File(pythia_top150) as f:
        pf, jf = f["particle_features"][:], f["jet_features"][:]
    d = tmp_path_factory.mktemp("jc")
    # Two files; each larger than one read step (fragments of 40 entries) and of several baskets.
    return [write_root(d / "a.root", "tree", jetclass_arrays(pf[:180], jf[:180], seed=1), baskets=3),
            write_root(d / "b.root", "tree", jetclass_arrays(pf[180:], jf[180:], seed=2), baskets=2)], (pf, jf)


def test_per_jet_trees_on_dask_then_export_to_jetnet(tmp_path, jetclass_files, scheduler):
    files, (pf, jf) = jetclass_files
    out = tmp_path / "s"
    run_cli("pcdata", "ingest", "root", *map(str, files), "--tree", "tree", "--out", str(out), "--scheduler", scheduler,
            "--rows-per-fragment", "40", "--quiet", check=True)
    s = open_store(out)
    assert s.num_clouds == 300 and len(s.fragments) == 5 + 3
    assert s.meta.attrs["labels"] == ["QCD", "Tbqq", "Wqq"] and s.meta.attrs["source_layout"] == "root-jets"
    run_cli("pcdata", "export", str(out), "--format", "jetnet-hdf5", "--out", str(tmp_path / "t.hdf5"), check=True)
    with h5py.File(tmp_path / "t.hdf5") as f:
        back = f["particle_features"][:]
    np.testing.assert_array_equal(back[..., 3], pf[..., 3])
    np.testing.assert_allclose(back[..., :3], pf[..., :3], atol=2e-6)


def test_collection_with_event_fields_and_empty_events(tmp_path, scheduler):
    rng = np.random.default_rng(4)
    n = rng.integers(0, 4, 1000)
    branches = {"Muon": ak.zip({"pt": ak.unflatten(rng.exponential(20, n.sum()).astype(np.float32), n),
                                "eta": ak.unflatten(rng.normal(0, 1.5, n.sum()).astype(np.float32), n)}),
                "run": np.full(1000, 3, np.uint32), "event": np.arange(1000, dtype=np.uint64)}
    path = write_root(tmp_path / "nano.root", "Events", branches, baskets=4)
    out = tmp_path / "s"
    run_cli("pcdata", "ingest", "root", str(path), "--tree", "Events", "--collection", "Muon", "--features", "pt,eta",
            "--event-fields", "run,event", "--out", str(out), "--scheduler", scheduler, "--rows-per-fragment", "300",
            "--quiet", check=True)
    info = json.loads(run_cli("pcdata", "inspect", str(out), "--json", check=True).stdout)
    assert info["kind"] == "events" and [f["name"] for f in info["point_features"]] == ["pt", "eta"]
    assert [f["unit"] for f in info["point_features"]] == ["GeV", ""]
    s = open_store(out)
    np.testing.assert_array_equal(s.counts, n)
    np.testing.assert_array_equal(s.field("event"), np.arange(1000))
    assert s.stats["pt"].count == n.sum()


def test_register_on_success(tmp_path, jetclass_files, scheduler):
    files, _ = jetclass_files
    out, cat = tmp_path / "s", tmp_path / "cat"
    run_cli("pcdata", "ingest", "root", str(files[0]), "--tree", "tree", "--out", str(out), "--scheduler", scheduler,
            "--register", "jc", "--catalog", str(cat), "--quiet", check=True)
    resolved = run_cli("pcdata", "catalog", "resolve", "jc", "--catalog", str(cat), check=True).stdout.strip()
    assert resolved == str(out.resolve())


def test_mapping_file_names_the_branches(tmp_path, scheduler):
    rng = np.random.default_rng(5)
    n = rng.integers(1, 5, 200)
    path = write_root(tmp_path / "x.root", "ev", {"Jet": ak.zip({"pt": ak.unflatten(rng.random(n.sum()), n)})})
    (tmp_path / "map.yaml").write_text("layout: collection\ntree: ev\ncollection: Jet\nfeatures: [pt]\n")
    run_cli("pcdata", "ingest", "root", str(path), "--mapping", str(tmp_path / "map.yaml"), "--out", str(tmp_path / "s"),
            "--scheduler", scheduler, "--quiet", check=True)
    assert open_store(tmp_path / "s").num_points == n.sum()


@pytest.mark.parametrize("fmt", ["TTree", "RNTuple"])
@pytest.mark.parametrize("case", ["missing-branch", "wrong-type", "lengths"])
def test_bad_root_input_exits_2_and_leaves_nothing(tmp_path, scheduler, case, fmt):
    rng = np.random.default_rng(6)
    a = rng.integers(1, 4, 300)
    b = a.copy()
    b[250] += 1
    branches = {"Jet_pt": ak.unflatten(rng.random(a.sum()), a), "Jet_eta": ak.unflatten(rng.random(b.sum()), b),
                "Jet_flat": rng.random(300)}
    path = (write_root if fmt == "TTree" else write_rntuple)(tmp_path / "in.root", "t", branches)
    noun, member = ("tree", "branch") if fmt == "TTree" else ("RNTuple", "field")
    features, message = {
        "missing-branch": ("pt,phi", f"in.root: {noun} 't' has no {member} 'Jet_phi'"),
        "wrong-type": ("pt,flat", f"in.root: {member} 'Jet_flat' has type 'double', expected a jagged numeric {member}"),
        "lengths": ("pt,eta", "in.root: jagged branches 'Jet_pt' and 'Jet_eta' disagree in length at entry 250"),
    }[case]
    out = tmp_path / "s"
    r = run_cli("pcdata", "ingest", "root", str(path), "--tree", "t", "--collection", "Jet", "--features", features,
                "--out", str(out), "--scheduler", scheduler, "--rows-per-fragment", "50", "--quiet")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.root"]


# -- RNTuple: the same content as a TTree ingests to the same store ----------------------------------
def _nano_branches(n_events: int = 900, seed: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 5, n_events)
    jag = lambda scale: ak.unflatten((rng.normal(size=n.sum()) * scale).astype(np.float32), n)  # noqa: E731
    return {"Jet": ak.zip({"pt": abs(jag(30.0)), "eta": jag(1.5), "phi": jag(1.0)}),
            "run": np.full(n_events, 5, np.uint32), "event": np.arange(n_events, dtype=np.uint64)}


@pytest.mark.parametrize("layout", ["jets", "collection"])
def test_an_rntuple_ingests_to_the_store_of_its_ttree_twin(tmp_path, jetclass_files, scheduler, layout):
    """NanoAOD-style RVec<float> fields and JetClass-style jagged fields, written once as TTrees and
    once as RNTuples, through the real command: the stores hold the same clouds and fields."""
    if layout == "jets":
        _, (pf, jf) = jetclass_files
        branches, name, parts = jetclass_arrays(pf[:180], jf[:180], seed=1), "tree", 3
        args = ["--tree", "tree", "--rows-per-fragment", "40"]  # fragments that cut the 60-entry clusters
    else:
        branches, name, parts = _nano_branches(), "Events", 4
        args = ["--tree", "Events", "--collection", "Jet", "--features", "pt,eta,phi", "--event-fields", "run,event"]
    ttree = write_root(tmp_path / "t.root", name, branches, baskets=parts)
    rntuple = write_rntuple(tmp_path / "n.root", name, branches, clusters=parts)
    stores = {}
    for label, path in (("ttree", ttree), ("rntuple", rntuple)):
        out = tmp_path / f"{label}.zarr"
        run_cli("pcdata", "ingest", "root", str(path), *args, "--out", str(out), "--scheduler", scheduler, "--quiet", check=True)
        stores[label] = open_store(out)
    a, b = stores["ttree"], stores["rntuple"]
    assert a.num_clouds == b.num_clouds == len(branches[next(iter(branches))])
    assert b.read().equals(a.read())
    assert b.meta.point_features == a.meta.point_features and b.meta.cloud_features == a.meta.cloud_features
    assert b.meta.attrs == a.meta.attrs
    if layout == "collection":
        np.testing.assert_array_equal(b.counts, ak.num(branches["Jet"].pt).to_numpy())
        np.testing.assert_array_equal(b.field("event"), np.arange(900))
