import awkward as ak
import h5py
import numpy as np
import pytest

from pcdata.errors import SourceError
from pcdata.sources.root import CollectionSpec, RootCollectionSource, RootJetSource, load_mapping
from tests.helpers import jetclass_arrays, write_root


@pytest.fixture(scope="module")
def jets(pythia_top150):
    with h5py.File(pythia_top150) as f:
        return f["particle_features"][:], f["jet_features"][:]


@pytest.fixture(scope="module")
def jetclass_file(tmp_path_factory, jets):
    return write_root(tmp_path_factory.mktemp("root") / "jc.root", "tree", jetclass_arrays(*jets), baskets=4)


def test_per_jet_tree_gives_the_relative_coordinates_back(jetclass_file, jets):
    pf, jf = jets
    src = RootJetSource.open([jetclass_file], tree="tree")
    assert src.mode == "four-vector" and src.labels == ("label_QCD", "label_Tbqq", "label_Wqq")
    c = src.read(0, 0, len(jf))
    mask = pf[..., 3] == 1
    np.testing.assert_array_equal(c.counts, mask.sum(1))
    # float32 four-vectors in the file: agreement to float32 precision of the momenta.
    np.testing.assert_allclose(c.points[:, 0], pf[..., 0][mask], atol=2e-6)
    np.testing.assert_allclose(c.points[:, 1], pf[..., 1][mask], atol=2e-6)
    np.testing.assert_allclose(c.points[:, 2], pf[..., 2][mask], rtol=2e-5, atol=1e-8)
    np.testing.assert_allclose(c.fields["mass"], jf[:, 2], rtol=1e-3)
    # Untruncated Pythia jets (P = 150): the constituents' transverse momenta add up to the jet's
    # (sum ptrel cos(phirel) = 1, sum ptrel sin(phirel) = 0), and particles come hardest first.
    ptrel, phirel = c.points[:, 2].astype(np.float64), c.points[:, 1].astype(np.float64)
    whole = jf[:, 3] <= 150
    assert whole.mean() > 0.9
    np.testing.assert_allclose(np.add.reduceat(ptrel * np.cos(phirel), c.offsets[:-1])[whole], 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.add.reduceat(ptrel * np.sin(phirel), c.offsets[:-1])[whole], 0.0, atol=1e-4)
    assert all((np.diff(c.cloud(i)["points"][:, 2]) <= 0).all() for i in range(0, len(c), 37))
    assert set(np.unique(c.fields["label"])) <= {0, 1, 2}


def test_relative_branches_are_accepted(tmp_path, jets):
    pf, jf = jets
    mask = pf[..., 3] == 1
    counts = mask.sum(1)
    jag = lambda a: ak.unflatten(a[mask], counts)  # noqa: E731
    path = write_root(tmp_path / "rel.root", "t", {
        "part_deta": jag(pf[..., 0]), "part_dphi": jag(pf[..., 1]), "part_pt": jag(pf[..., 2] * jf[:, :1]),
        "jet_pt": jf[:, 0], "jet_eta": jf[:, 1], "jet_phi": np.zeros(len(jf), np.float32), "jet_energy": jf[:, 0] * 2,
    })
    c = RootJetSource.open([path], tree="t").read(0, 10, 20)
    np.testing.assert_array_equal(c.points[:, 0], pf[10:20, :, 0][mask[10:20]])
    assert (c.fields["label"] == -1).all()


def _nano(n_events=400, seed=0):
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 6, n_events)
    n[:3] = 0  # events with no objects stay as empty clouds
    jagged = lambda: ak.unflatten(rng.normal(size=n.sum()).astype(np.float32), n)  # noqa: E731
    return n, {"Jet": ak.zip({"pt": jagged(), "eta": jagged(), "phi": jagged()}),
               "run": np.full(n_events, 7, np.int32), "event": np.arange(n_events, dtype=np.uint64) * 3}


def test_collection_gives_one_cloud_per_event(tmp_path):
    n, branches = _nano()
    path = write_root(tmp_path / "nano.root", "Events", branches, baskets=3)
    src = RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt", "phi"), ("event", "run")))
    c = src.read(0, 0, 400)
    np.testing.assert_array_equal(c.counts, n)
    assert c.counts[:3].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(c.points[:, 1], ak.to_numpy(ak.flatten(branches["Jet"].phi)))
    assert c.fields["event"].dtype == np.uint64 and c.fields["event"][5] == 15
    part = src.read(0, 100, 150)
    assert part.equals(c.slice(100, 150))


def test_errors_name_the_branch_and_the_file(tmp_path):
    n, branches = _nano()
    path = write_root(tmp_path / "nano.root", "Events", branches)
    with pytest.raises(SourceError, match=r"nano.root: tree 'Events' has no branch 'Jet_mass'"):
        RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt", "mass")))
    with pytest.raises(SourceError, match=r"nano.root: branch 'Jet_pt' has type .*expected a numeric branch with one value per entry"):
        RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt",), ("Jet_pt",)))
    flat = write_root(tmp_path / "flat.root", "Events", {"Jet_pt": np.ones(5, np.float32)})
    with pytest.raises(SourceError, match=r"flat.root: branch 'Jet_pt' has type 'float', expected a jagged numeric branch"):
        RootCollectionSource.open([flat], tree="Events", spec=CollectionSpec("Jet", ("pt",)))
    with pytest.raises(SourceError, match=r"nano.root: no tree 'Event'; did you mean Events"):
        RootCollectionSource.open([path], tree="Event", spec=CollectionSpec("Jet", ("pt",)))
    (tmp_path / "x.root").write_text("not root")
    with pytest.raises(SourceError, match="x.root: not a readable ROOT file"):
        RootCollectionSource.open([tmp_path / "x.root"], tree="Events", spec=CollectionSpec("Jet", ("pt",)))


def test_jagged_lengths_that_disagree_are_reported(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(1, 4, 50)
    b = a.copy()
    b[31] += 1
    path = write_root(tmp_path / "bad.root", "t", {
        "Jet_pt": ak.unflatten(rng.random(a.sum()), a), "Jet_eta": ak.unflatten(rng.random(b.sum()), b)})
    src = RootCollectionSource.open([path], tree="t", spec=CollectionSpec("Jet", ("pt", "eta")))
    with pytest.raises(SourceError, match=r"bad.root: jagged branches 'Jet_pt' and 'Jet_eta' disagree in length at entry 31"):
        src.read(0, 0, 50)


def test_mapping_file_is_validated(tmp_path):
    (tmp_path / "m.yaml").write_text("layout: collection\ntree: Events\ncollection: Jet\nfeatures: [pt]\n")
    assert load_mapping(tmp_path / "m.yaml")["collection"] == "Jet"
    (tmp_path / "bad.yaml").write_text("layout: jets\nbranches: {px: a, colour: b}\n")
    with pytest.raises(SourceError, match="bad.yaml: unknown branch role 'colour'"):
        load_mapping(tmp_path / "bad.yaml")
