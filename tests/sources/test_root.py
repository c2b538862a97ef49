import awkward as ak
import h5py
import numpy as np
import pytest

from pcdata.errors import SourceError
from pcdata.sources.root import CollectionSpec, RootCollectionSource, RootJetSource, entries_per_step, load_mapping
from tests.helpers import jetclass_arrays, write_rntuple, write_root

#: The two on-disk forms of a tree: (writer of path, name, branches, parts; what it holds, its columns).
FORMATS = {
    "TTree": (lambda path, name, branches, parts=1: write_root(path, name, branches, baskets=parts), "tree", "branch"),
    "RNTuple": (lambda path, name, branches, parts=1: write_rntuple(path, name, branches, clusters=parts), "RNTuple", "field"),
}


@pytest.fixture(params=list(FORMATS))
def fmt(request):
    return FORMATS[request.param]


@pytest.fixture(scope="module")
def jets(pythia_top150):
    with h5py.File(pythia_top150) as f:
        return f["particle_features"][:], f["jet_features"][:]


@pytest.fixture(scope="module", params=list(FORMATS))
def jetclass_file(tmp_path_factory, jets, request):
    write = FORMATS[request.param][0]
    return write(tmp_path_factory.mktemp("root") / "jc.root", "tree", jetclass_arrays(*jets), 4)


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


def test_relative_branches_are_accepted(tmp_path, jets, fmt):
    pf, jf = jets
    mask = pf[..., 3] == 1
    counts = mask.sum(1)
    jag = lambda a: ak.unflatten(a[mask], counts)  # noqa: E731
    path = fmt[0](tmp_path / "rel.root", "t", {
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


def test_collection_gives_one_cloud_per_event(tmp_path, fmt):
    n, branches = _nano()
    path = fmt[0](tmp_path / "nano.root", "Events", branches, 3)
    src = RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt", "phi"), ("event", "run")))
    c = src.read(0, 0, 400)
    np.testing.assert_array_equal(c.counts, n)
    assert c.counts[:3].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(c.points[:, 1], ak.to_numpy(ak.flatten(branches["Jet"].phi)))
    assert c.fields["event"].dtype == np.uint64 and c.fields["event"][5] == 15
    part = src.read(0, 100, 150)
    assert part.equals(c.slice(100, 150))


def test_errors_name_the_branch_and_the_file(tmp_path, fmt):
    write, noun, member = fmt
    n, branches = _nano()
    path = write(tmp_path / "nano.root", "Events", branches)
    with pytest.raises(SourceError, match=rf"nano.root: {noun} 'Events' has no {member} 'Jet_mass'; did you mean Jet_eta"):
        RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt", "mass")))
    with pytest.raises(SourceError, match=rf"nano.root: {member} 'Jet_pt' has type .*expected a numeric {member} with one value per entry"):
        RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt",), ("Jet_pt",)))
    flat = write(tmp_path / "flat.root", "Events", {"Jet_pt": np.ones(5, np.float32)})
    with pytest.raises(SourceError, match=rf"flat.root: {member} 'Jet_pt' has type 'float', expected a jagged numeric {member}"):
        RootCollectionSource.open([flat], tree="Events", spec=CollectionSpec("Jet", ("pt",)))
    with pytest.raises(SourceError, match=r"nano.root: no tree 'Event'; did you mean Events"):
        RootCollectionSource.open([path], tree="Event", spec=CollectionSpec("Jet", ("pt",)))
    (tmp_path / "x.root").write_text("not root")
    with pytest.raises(SourceError, match="x.root: not a readable ROOT file"):
        RootCollectionSource.open([tmp_path / "x.root"], tree="Events", spec=CollectionSpec("Jet", ("pt",)))


def test_jagged_lengths_that_disagree_are_reported(tmp_path, fmt):
    rng = np.random.default_rng(1)
    a = rng.integers(1, 4, 50)
    b = a.copy()
    b[31] += 1
    path = fmt[0](tmp_path / "bad.root", "t", {
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


# -- RNTuple: the same sources over ROOT 7's columnar format ------------------------------------------
def test_an_rntuple_gives_the_clouds_of_its_ttree_twin(tmp_path, jets):
    """NanoAOD's RVec<float> fields read as the TTree's float[nJet] branches, both layouts."""
    n, branches = _nano(seed=3)
    spec = CollectionSpec("Jet", ("pt", "eta", "phi"), ("run", "event"))
    tree = RootCollectionSource.open([write_root(tmp_path / "t.root", "Events", branches, baskets=3)], tree="Events", spec=spec)
    ntuple = RootCollectionSource.open([write_rntuple(tmp_path / "n.root", "Events", branches, clusters=3)], tree="Events", spec=spec)
    assert ntuple.has_counter and ntuple.field_dtypes == tree.field_dtypes == {"run": "int32", "event": "uint64"}
    # ranges that cut clusters read the same as whole ones
    for start, stop in [(0, 400), (5, 140), (133, 134), (390, 400)]:
        assert ntuple.read(0, start, stop).equals(tree.read(0, start, stop))
    arrays = jetclass_arrays(*jets)
    a = RootJetSource.open([write_root(tmp_path / "jt.root", "tree", arrays, baskets=2)], tree="tree")
    b = RootJetSource.open([write_rntuple(tmp_path / "jn.root", "tree", arrays, clusters=2)], tree="tree")
    assert (b.mode, b.labels) == (a.mode, a.labels) == ("four-vector", ("label_QCD", "label_Tbqq", "label_Wqq"))
    assert b.read(0, 7, 111).equals(a.read(0, 7, 111))


def test_rntuple_steps_are_whole_clusters(tmp_path):
    n, branches = _nano(n_events=1000)
    path = str(write_rntuple(tmp_path / "n.root", "Events", branches, clusters=4))  # clusters of 250 entries
    # a step smaller than a cluster still reads one whole cluster: uproot decompresses it anyway
    assert entries_per_step(path, "Events", ["Jet_pt"], "100 B") == 250
    # Jet_pt, Jet_eta: about 2.5 x 8 bytes of values and 2 x 8 bytes of offsets per event, so ~16 kB
    # is about 444 events: rounded down to whole clusters
    assert entries_per_step(path, "Events", ["Jet_pt", "Jet_eta"], "16 kB") == 250
    assert entries_per_step(path, "Events", ["Jet_pt", "Jet_eta"], "40 kB") in (750, 1000)
    assert entries_per_step(path, "Events", ["Jet_pt", "Jet_eta"], "64 MB") % 250 == 0
    # a TTree keeps uproot's estimate, not rounded
    tree = str(write_root(tmp_path / "t.root", "Events", branches, baskets=4))
    assert entries_per_step(tree, "Events", ["Jet_pt"], "1 kB") not in (0, 250)


def test_rntuple_fields_of_other_types_are_refused_by_name(tmp_path):
    n, branches = _nano(n_events=20)
    path = write_rntuple(tmp_path / "odd.root", "Events", {
        **branches, "Jet_name": ak.Array([["j"] * int(k) for k in n]), "tag": ak.Array(["x"] * 20),
        "Jet_fixed": np.zeros((20, 3), np.float32)})
    cases = {("name",): ("Jet_name", r"ROOT::VecOps::RVec<std::string>", "jagged numeric field"),
             ("fixed",): ("Jet_fixed", r"std::array<float,3>", "jagged numeric field")}
    for features, (name, typename, expected) in cases.items():
        with pytest.raises(SourceError, match=rf"odd.root: field '{name}' has type '{typename}', expected a {expected}"):
            RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", features))
    with pytest.raises(SourceError, match=r"odd.root: field 'tag' has type 'std::string', expected a numeric field with one value"):
        RootCollectionSource.open([path], tree="Events", spec=CollectionSpec("Jet", ("pt",), ("tag",)))


def test_a_damaged_rntuple_is_one_source_error(tmp_path):
    import uproot

    n, branches = _nano(n_events=2000)
    path = write_rntuple(tmp_path / "n.root", "Events", branches, clusters=4)
    good = path.read_bytes()
    with uproot.open(path) as f:
        r = f["Events"]
        anchor = r.members
        # cluster 1 (entries 500:1000), the page of Jet_pt's offsets, which zlib compresses (pages
        # that do not compress are stored raw, and uproot writes no page checksums)
        field = next(i for i, x in enumerate(r.field_records) if x.field_name == "Jet_pt")
        column = next(c.idx for c in r.column_records if c.field_id == field)
        page = r.page_link_list[1][column].pages[0].locator
    spec = CollectionSpec("Jet", ("pt", "eta"))

    def zeroed(at: int):
        data = bytearray(good)
        data[at : at + 32] = bytes(32)
        path.write_bytes(bytes(data))
        return path

    # the footer (cluster list, page locations) is checksummed: refused on opening
    with pytest.raises(SourceError, match=r"n.root: damaged RNTuple 'Events', its header or footer cannot be read"):
        RootCollectionSource.open([zeroed(anchor["fSeekFooter"] + 8)], tree="Events", spec=spec)
    # a damaged page: opening needs metadata only, reading the range that holds it fails cleanly
    src = RootCollectionSource.open([zeroed(page.offset + page.num_bytes // 2)], tree="Events", spec=spec)
    # (0:400, not 0:500: uproot 5.7 also reads the cluster that starts at a range's stop)
    assert src.read(0, 0, 400).counts.tolist() == n[:400].tolist()
    with pytest.raises(SourceError, match=r"n.root: cannot read entries 400:600 of 'Events' \(error: Error -3 while decompressing"):
        src.read(0, 400, 600)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(SourceError, match=r"n.root: truncated ROOT file"):
        RootCollectionSource.open([path], tree="Events", spec=spec)


def test_an_object_that_is_no_tree_is_named(tmp_path):
    import uproot

    with uproot.recreate(tmp_path / "h.root") as f:
        f["h"] = np.histogram(np.arange(10.0), bins=3)
    with pytest.raises(SourceError, match=r"h.root: 'h' is a TH1D, not a TTree or an RNTuple"):
        RootCollectionSource.open([tmp_path / "h.root"], tree="h", spec=CollectionSpec("Jet", ("pt",)))
