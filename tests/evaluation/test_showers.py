"""pcmodels.evaluation.showers and ``pcmodels evaluate`` on showers: built-in generator showers as
files and stores, the report, the floor, and bad inputs."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from pcdata.generate.showers import generate_showers
from pcdata.geometry.voxels import voxels_to_clouds
from pcdata.ingest.calochallenge import calochallenge_template
from pcdata.sources.calochallenge import write_calochallenge_hdf5
from pcdata.store import SplitSpec, write_store
from pcmodels.errors import EvaluationError
from pcmodels.evaluation.shower_samples import is_shower_input, open_showers
from pcmodels.evaluation.showers import evaluate_showers, format_shower_summary
from pcmodels.metrics.classifier import ClassifierConfig
from tests.conftest import run_cli

FAST = ClassifierConfig(epochs=1, hidden=64, batch_size=100)


def _read(path):
    with h5py.File(path, "r") as f:
        return f["incident_energies"][:], f["showers"][:]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ds2 showers of the built-in generator: a real file, a generated one, and the real one as a store."""
    d = tmp_path_factory.mktemp("showers")
    generate_showers(d / "real.hdf5", geometry="ds2", num_showers=240, seed=1, progress=False)
    generate_showers(d / "gen.hdf5", geometry="ds2", num_showers=120, seed=2, progress=False)
    inc, showers = _read(d / "real.hdf5")
    clouds = voxels_to_clouds(showers, inc, "ds2")
    write_store(d / "real.zarr", clouds, calochallenge_template("ds2", incident_dtype=inc.dtype.name,
                                                                splits=SplitSpec((("train", 0.5), ("test", 0.5)))))
    return d


@pytest.fixture(scope="module")
def report(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "rep"
    return out, evaluate_showers(files / "real.hdf5", files / "gen.hdf5", out, num=None, classifier=FAST,
                                 progress=False)


def test_report_holds_every_number_beside_the_floor(report, files):
    out, rep = report
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(rep))
    assert rep["kind"] == "showers" and rep["geometry"] == "ds2"
    assert rep["real"]["num_showers"] == 240 and rep["generated"]["num_showers"] == 120
    assert rep["floor_halves"] == [120, 120]
    assert len(rep["official_labels"]) == 227 and rep["official_labels"][0] == "Etot / Einc"
    for block in (rep, rep["floor"]):
        assert set(block["separation_power"]) == set(rep["separation_power"])
        assert len(block["separation_power"]) == 227 + 3 * 45
        for key in ("auc_low", "jsd_low", "auc_high", "jsd_high"):
            assert block[key] is None or 0 <= block[key] <= 1 or key.startswith("jsd")
        assert block["fpd"]["scale"] == 1000 and block["fpd"]["value"] > 0 and block["kpd"]["error"] >= 0
    assert rep["classifier"]["low"]["sizes"] == [72, 24, 24]  # 0.6/0.2/0.2 of 120 per class
    assert rep["classifier"]["config"]["epochs"] == 1
    assert rep["versions"]["numpy"] and rep["seed"] == 0
    summary = (out / "summary.txt").read_text()
    assert summary.strip() == format_shower_summary(rep) and "FPD x1e3" in summary and "real-vs-real floor" in summary
    for name in ("average_shower", "profiles", "separation_power", "classifier", "e_layer", "etot_voxels"):
        assert (out / f"{name}.pdf").stat().st_size > 0 and (out / f"{name}.png").stat().st_size > 0
    assert not list(out.parent.glob(".rep.partial-*"))  # the staging directory is gone


def test_official_separation_power_file_format(report):
    out, rep = report
    text = (out / "histogram_chi2_2.txt").read_text()
    assert text.startswith("List of chi2 of the plotted histograms, see eq. 15 of 2009.03796 for its definition.\n"
                           "Etot / Einc: \n")
    blocks = text.split("\n", 1)[1].split("\n\n")[:-1]
    assert len(blocks) == 227
    label, value = blocks[1].split(": \n")
    assert label == "E layer 0" and float(value) == rep["separation_power"]["E layer 0"]


def test_store_and_file_inputs_give_the_same_report(files, report, tmp_path):
    _, from_file = report
    from_store = evaluate_showers(files / "real.zarr", files / "gen.hdf5", tmp_path / "rep", split=None, num=None,
                                  classifier=FAST, plots=False, progress=False)
    for key in ("separation_power", "fpd", "kpd", "auc_low", "jsd_low", "auc_high", "jsd_high", "floor"):
        assert from_store[key] == from_file[key], key
    assert from_store["real"]["kind"] == "store" and from_file["real"]["kind"] == "file"


def test_a_sample_against_itself_scores_zero_and_the_floor_does_not(files, tmp_path):
    # A copy: the same path twice is refused (the bad-input cases below)
    import shutil

    copy = shutil.copy(files / "gen.hdf5", tmp_path / "copy.hdf5")
    rep = evaluate_showers(files / "gen.hdf5", copy, tmp_path / "rep", num=None, classifier=FAST,
                           plots=False, progress=False)
    assert all(v == 0.0 for k, v in rep["separation_power"].items() if v is not None)
    # FPD draws different bootstrap batches from the two copies: small, not zero
    assert rep["fpd"]["value"] < 1e-2 * rep["floor"]["fpd"]["value"]
    assert rep["floor"]["separation_power"]["Etot / Einc"] > 0


def test_num_draws_a_seeded_subset_and_twice_as_many_real(files, tmp_path):
    reps = [evaluate_showers(files / "real.hdf5", files / "gen.hdf5", tmp_path / f"r{i}", num=50, seed=seed,
                             classifier=FAST, plots=False, progress=False) for i, seed in enumerate((3, 3, 4))]
    assert reps[0]["real"]["num_showers"] == 100 and reps[0]["generated"]["num_showers"] == 50
    assert reps[0]["separation_power"] == reps[1]["separation_power"] and reps[0]["auc_low"] == reps[1]["auc_low"]
    assert reps[0]["separation_power"] != reps[2]["separation_power"]


def test_files_are_read_in_bounded_blocks_of_the_rows_asked_for(files):
    sample = open_showers(files / "real.hdf5")
    inc, showers = _read(files / "real.hdf5")
    rows = np.array([0, 5, 6, 7, 30, 31, 200, 239])
    blocks = list(sample.with_rows(rows).blocks(block_rows=8))
    assert [len(b[0]) for b in blocks] == [4, 2, 1, 1]  # rows of the windows 0-7, 24-31, 200-207, 232-239
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), showers[rows])
    np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), inc[rows, 0])
    assert is_shower_input(files / "real.hdf5") and is_shower_input(files / "real.zarr")


def test_the_real_store_split_is_used(files):
    sample = open_showers(files / "real.zarr", split="test")
    assert 0 < len(sample.rows) < 240
    with pytest.raises(EvaluationError, match="no split 'valid'"):
        open_showers(files / "real.zarr", split="valid")


# -- bad input: one line, exit code 2, nothing written ---------------------------------------------


def _bad_files(d, files):
    inc, showers = _read(files / "real.hdf5")
    nan = showers[:20].copy()
    nan[7, 3] = np.nan
    neg = showers[:20].copy()
    neg[4, 100] = -1.0
    with h5py.File(d / "nokeys.hdf5", "w") as f:
        f["energies"] = inc
        f["showers"] = showers
    with h5py.File(d / "shape.hdf5", "w") as f:
        f["incident_energies"] = inc[:10]
        f["showers"] = showers[:10, :100]
    with h5py.File(d / "empty.hdf5", "w") as f:
        f["incident_energies"] = np.zeros((0, 1))
        f["showers"] = np.zeros((0, 6480), np.float32)
    write_calochallenge_hdf5(d / "nan.hdf5", inc[:20], nan)
    write_calochallenge_hdf5(d / "neg.hdf5", inc[:20], neg)
    zero_inc = inc[:20].copy()
    zero_inc[2] = 0
    with h5py.File(d / "zeroinc.hdf5", "w") as f:
        f["incident_energies"] = zero_inc
        f["showers"] = showers[:20]
    generate_showers(d / "photons.hdf5", geometry="ds1-photons", num_showers=20, seed=1, progress=False)
    (d / "text.hdf5").write_text("not hdf5")


CASES = [
    ("photons.hdf5", "gen.hdf5", "ds2 showers cannot be compared with the ds1-photons showers"),
    ("nokeys.hdf5", "gen.hdf5", "no dataset 'incident_energies'"),
    ("shape.hdf5", "gen.hdf5", "100 voxels, which is no CaloChallenge geometry"),
    ("empty.hdf5", "gen.hdf5", "holds no showers"),
    ("real.hdf5", "nan.hdf5", "shower 7 has a non-finite voxel energy"),
    ("real.hdf5", "neg.hdf5", "shower 4 has a negative voxel energy"),
    ("zeroinc.hdf5", "gen.hdf5", "incident energy of shower 2 is 0.0"),
    ("real.hdf5", "real.hdf5", "is the real sample itself"),
]


@pytest.fixture(scope="module")
def bad_dir(files, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    _bad_files(d, files)
    return d


@pytest.mark.parametrize("real,generated,message", CASES, ids=[c[1] if c[0] == "real.hdf5" else c[0] for c in CASES])
def test_bad_inputs_are_one_line_and_leave_no_report(files, bad_dir, tmp_path, real, generated, message):
    where = lambda name: str((files if (files / name).exists() else bad_dir) / name)  # noqa: E731
    out = tmp_path / "rep"
    proc = run_cli("pcmodels", "evaluate", "-r", where(real), "-g", where(generated), "-o", str(out), "-n", "0",
                   "--classifier-epochs", "1", "-q")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".rep*"))


def test_bad_options_are_one_line(files, tmp_path):
    for args, message in ((["--classifier-split", "0.5,0.5"], "--classifier-split"),
                          (["--classifier-epochs", "0"], "--classifier-epochs"),
                          (["--device", "tpu"], "--device")):
        proc = run_cli("pcmodels", "evaluate", "-r", str(files / "real.hdf5"), "-g", str(files / "gen.hdf5"),
                       "-o", str(tmp_path / "rep"), *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "rep").exists()


def test_cli_detects_showers_and_writes_the_report(files, tmp_path):
    out = tmp_path / "rep"
    proc = run_cli("pcmodels", "evaluate", "-r", str(files / "real.hdf5"), "-g", str(files / "gen.hdf5"), "-o", str(out),
                   "-n", "40", "--classifier-epochs", "1", "--no-plots", "-q", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["kind"] == "showers" and rep["generated"]["num_showers"] == 40 and rep["seed"] == 2
    assert "AUC low (voxels)" in proc.stdout and rep["plots"] == []
    assert not math.isnan(rep["fpd"]["value"])


def test_plots_of_a_layer_nobody_fills_are_written(tmp_path):
    """A model that never fills a layer gives all-empty histograms: linear axes, no failure."""
    from pcmodels.evaluation.shower_plots import plot_histograms, plot_separation_by_layer

    edges = np.linspace(0, 1, 11)
    seps = {"E layer 3": {"edges": edges, "reference": np.zeros(10), "generated": np.zeros(10), "value": float("nan")},
            "E layer 4": {"edges": edges, "reference": np.full(10, 0.1), "generated": np.zeros(10), "value": 0.5}}
    files = plot_histograms(seps, list(seps), tmp_path / "h", title="t")
    assert [f.suffix for f in files] == [".pdf", ".png"] and all(f.stat().st_size > 0 for f in files)
    log_edges = {k: {**v, "edges": np.geomspace(0.015, 100, 11)} for k, v in seps.items()}
    files = plot_histograms(log_edges, list(seps), tmp_path / "l", title="t", log_x=True)
    assert all(f.stat().st_size > 0 for f in files)
    files = plot_separation_by_layer({"E layer 3": float("nan")}, {"E layer 3": float("nan")}, [3], tmp_path / "s",
                                     families=["E layer"])
    assert all(f.stat().st_size > 0 for f in files)
