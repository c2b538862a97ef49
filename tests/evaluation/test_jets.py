"""pcmodels.evaluate and ``pcmodels evaluate``: real Pythia jets against a mis-modelled copy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pcdata import Clouds
from pcdata.ingest.jetnet import jetnet_template
from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block
from pcdata.store import SplitSpec, write_store
from pcmodels.evaluation.jets import METRICS, EvaluationError, _read_jets, evaluate, format_summary
from pcmodels.metrics import wasserstein_placeholder_reason
from tests.conftest import run_cli

SPLITS = SplitSpec((("train", 0.2), ("test", 0.8)))  # most of the 300 jets in the evaluated split


def _smeared(clouds: Clouds, seed: int = 0) -> Clouds:
    """A 'generated' copy: wider jets (angles x1.3, so heavier) and ptrel smeared by 10%."""
    rng = np.random.default_rng(seed)
    points = clouds.points.copy()
    points[:, :2] *= 1.3
    points[:, 2] *= rng.lognormal(0.0, 0.1, len(points)).astype(np.float32)
    return Clouds(points, clouds.offsets, clouds.fields, clouds.point_features)


@pytest.fixture(scope="module")
def stores(pythia_top150, tmp_path_factory):
    """``(real, generated)`` stores: the Pythia jets, and a smeared copy of them."""
    d = tmp_path_factory.mktemp("evaluate")
    file = inspect_jetnet_file(pythia_top150)
    clouds = read_jetnet_block(file, 0, file.n_jets)
    template = jetnet_template(file.num_particles, SPLITS)
    write_store(d / "real", clouds, template)
    write_store(d / "generated", _smeared(clouds), template)
    return d / "real", d / "generated"


def test_report_has_every_metric_its_floor_and_the_plots(stores, tmp_path):
    from pcdata import open_store

    real, generated = stores
    out = tmp_path / "report"
    # 120 jets a side keeps the EFPs (~80 jets/s per core at 150 particles) to a few seconds.
    report = evaluate(real, generated, out, num=120, seed=0, progress=False)

    assert sorted(p.name for p in out.iterdir()) == ["jet_features.png", "metrics.json", "particle_features.png",
                                                     "summary.txt"]
    assert json.loads((out / "metrics.json").read_text()) == report
    n_test = len(open_store(real).split_indices("test"))
    assert report["real"]["split_size"] == n_test > 120 and report["real"]["num_particles"] == 150
    assert report["real"]["num_jets"] == report["generated"]["num_jets"] == 120
    assert report["generated"]["store_size"] == 300 and report["generated"]["truncated_points"] == 0
    assert report["floor_halves"] == [60, 60] and report["eval_size"] == 60

    scales = {"w1m": 1e3, "w1p": 1e3, "w1efp": 1e5, "fpd": 1e3, "kpd": 1e3, "kl": 1e3}
    for name in METRICS:
        for entry in (report[name], report["floor"][name]):
            assert entry["scale"] == scales[name]
            assert entry["value"] == pytest.approx(entry["raw"]["value"] * entry["scale"])
            assert entry["error"] == pytest.approx(entry["raw"]["error"] * entry["scale"])
            assert np.isfinite(entry["value"]) and entry["error"] >= 0
    assert set(report["w1p"]["components"]) == {"etarel", "phirel", "ptrel"}
    # The copy is 30% wider: far above what two halves of the real jets give.
    for name in ("w1m", "w1efp", "fpd"):
        assert report[name]["value"] > 2 * report["floor"][name]["value"], name
    # Complete jets (P = 150): the constituent pT sum is a spike at 1, left out of KL.
    assert report["kl_features"] == ["mass", "multiplicity"]
    assert report["reference"]["top150"]["DeepTreeGAN v2"]["w1m"] == 1.45
    assert report["jetnet"]["unavailable"] == (["cov_mmd"] if wasserstein_placeholder_reason() else [])

    summary = (out / "summary.txt").read_text()
    assert summary.strip() == format_summary(report)
    assert "floor" in summary and all(name in summary for name in METRICS)


def test_clouds_longer_than_p_keep_their_hardest_particles(tmp_path):
    points = np.array([[0.1, 0.0, 0.1], [0.2, 0.0, 0.5], [0.3, 0.0, 0.3], [0.4, 0.0, 0.1]], np.float32)
    clouds = Clouds(points, np.array([0, 4], np.int64), {"pt": np.ones(1, np.float32), "eta": np.zeros(1, np.float32),
                    "mass": np.ones(1, np.float32), "num_particles": np.array([4], np.int32),
                    "label": np.array([2], np.int32)}, ("etarel", "phirel", "ptrel"))
    write_store(tmp_path / "s", clouds, jetnet_template(2))
    from pcdata import open_store

    jets, mask, truncated = _read_jets(open_store(tmp_path / "s"), np.array([0]), 2)
    assert truncated == 2 and mask.tolist() == [[True, True]]
    np.testing.assert_allclose(jets[0, :, 2], [0.5, 0.3])


def test_bad_inputs_are_refused(stores, tmp_path):
    real, generated = stores
    with pytest.raises(EvaluationError, match="no split 'nope'"):
        evaluate(real, generated, tmp_path / "r", split="nope", progress=False)
    with pytest.raises(EvaluationError, match="num must be at least 4"):
        evaluate(real, generated, tmp_path / "r", num=3, progress=False)
    # The real sample given as the generated one, under another spelling: refused before any work.
    (tmp_path / "same").symlink_to(real)
    with pytest.raises(EvaluationError, match=r"generated: .*same is the real sample itself"):
        evaluate(real, tmp_path / "same", tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(EvaluationError, match="cannot create the report directory"):
        evaluate(real, generated, tmp_path / "a-file", progress=False)
    rng = np.random.default_rng(0)
    other = Clouds(rng.normal(size=(20, 3)).astype(np.float32), np.arange(0, 21, 2, dtype=np.int64),
                   {"pt": np.ones(10, np.float32), "eta": np.zeros(10, np.float32), "mass": np.ones(10, np.float32),
                    "num_particles": np.full(10, 2, np.int32), "label": np.zeros(10, np.int32)}, ("x", "y", "z"))
    from dataclasses import replace

    from pcdata.store import Feature

    template = replace(jetnet_template(30), point_features=(Feature("x"), Feature("y"), Feature("z")))
    write_store(tmp_path / "xyz", other, template)
    with pytest.raises(EvaluationError, match="no point feature 'etarel'"):
        evaluate(real, tmp_path / "xyz", tmp_path / "r", progress=False)


def test_cli_writes_the_report_and_prints_the_summary(stores, tmp_path):
    real, generated = stores
    out = tmp_path / "cli-report"
    proc = run_cli("pcmodels", "evaluate", "--real", str(real), "--generated", str(generated), "--out", str(out),
                   "--num", "40", "--seed", "1", "--quiet", check=True)
    assert "w1m" in proc.stdout and "real-vs-real floor" in proc.stdout and "metrics.json" in proc.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["real"]["num_jets"] == 40 and report["generated"]["num_jets"] == 40 and report["seed"] == 1
    assert report["floor_halves"] == [20, 20]


def test_cli_errors_are_one_line_and_exit_2(stores, tmp_path):
    real, generated = stores
    proc = run_cli("pcmodels", "evaluate", "--real", str(tmp_path / "missing"), "--generated", str(generated),
                   "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("pcmodels", "evaluate", "--real", str(real), "--generated", str(generated), "--out",
                   str(tmp_path / "r"), "--split", "nope")
    assert proc.returncode == 2 and "no split 'nope'" in proc.stderr
    proc = run_cli("pcmodels", "evaluate", "--real", str(real), "--generated", str(generated), "--out",
                   str(tmp_path / "r"), "--num", "2")
    assert proc.returncode == 2 and "--num" in proc.stderr
