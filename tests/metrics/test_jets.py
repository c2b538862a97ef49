"""pcmodels.metrics.jets: the jetnet import under numpy 2 and the five jetnet metrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pcmodels.metrics import (
    JetSample,
    MetricConfig,
    MetricValue,
    compare_jets,
    efp_features,
    informative_observables,
    jet_observables,
    load_jetnet_evaluation,
    w1efp,
    w1efp_from_features,
    w1m,
    w1p,
    wasserstein_placeholder_reason,
)
from pcmodels.metrics import jets as jets_module

SMALL = MetricConfig(w1_batches=5, fpd_batches=10, fpd_points=5, kpd_batches=10, kl_bootstrap=20, efp_jobs=1)


def distort(jets: np.ndarray, mask: np.ndarray, *, widen: float = 1.3, smear: float = 0.3, seed: int = 0) -> np.ndarray:
    """A mis-modelled copy: angles widened (heavier jets) and ptrel smeared, padding kept at zero."""
    rng = np.random.default_rng(seed)
    out = jets.astype(np.float64).copy()
    out[..., :2] *= widen
    out[..., 2] *= rng.lognormal(0.0, smear, size=out[..., 2].shape)
    return (out * mask[..., None]).astype(np.float32)


# -- importing jetnet.evaluation under numpy 2 ------------------------------------------------------


def _real_wasserstein_imports() -> bool:
    # In a fresh interpreter: this one may hold the placeholder already.
    return subprocess.run([sys.executable, "-c", "import wasserstein"], capture_output=True).returncode == 0


def test_placeholder_only_when_the_real_import_fails():
    gm = load_jetnet_evaluation()
    assert callable(gm.w1m) and callable(gm.fpd) and callable(gm.kpd)
    placeholder = wasserstein_placeholder_reason()
    assert (placeholder is None) == _real_wasserstein_imports()
    if placeholder is not None:
        module = sys.modules["wasserstein"]
        assert not hasattr(module, "EMD")
        with pytest.raises(AttributeError, match="cov_mmd"):
            module.PairwiseEMD  # noqa: B018


def _fake_wasserstein(tmp_path, body: str):
    # Load jetnet first, so that "wasserstein" is in sys.modules and monkeypatch puts it back after.
    load_jetnet_evaluation()
    (tmp_path / "wasserstein.py").write_text(body)
    return tmp_path


def test_a_working_wasserstein_is_kept(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_fake_wasserstein(tmp_path, "EMD = 'the real one'\n")))
    monkeypatch.delitem(sys.modules, "wasserstein", raising=False)
    assert jets_module._ensure_wasserstein() is None
    assert sys.modules["wasserstein"].EMD == "the real one"
    assert wasserstein_placeholder_reason() is None


def test_a_broken_wasserstein_gets_the_placeholder_quietly(tmp_path, monkeypatch, capfd):
    body = ("import sys\nsys.stderr.write('A module that was compiled using NumPy 1.x cannot be run')\n"
            "raise ImportError('numpy.core.multiarray failed to import')\n")
    monkeypatch.syspath_prepend(str(_fake_wasserstein(tmp_path, body)))
    monkeypatch.delitem(sys.modules, "wasserstein", raising=False)
    reason = jets_module._ensure_wasserstein()
    assert "numpy.core.multiarray failed to import" in reason
    assert wasserstein_placeholder_reason() == reason
    assert "NumPy 1.x" not in capfd.readouterr().err
    # Asked again, the placeholder stays and no second import is tried.
    assert jets_module._ensure_wasserstein() == reason


# -- the metrics ------------------------------------------------------------------------------------


def test_five_metrics_run_and_tell_a_distorted_sample_from_the_floor(top30):
    jets, mask = top30
    a, b = JetSample.from_arrays(jets[:150], mask[:150], efp_jobs=1), JetSample.from_arrays(jets[150:], mask[150:], efp_jobs=1)
    bad = JetSample.from_arrays(distort(jets[150:], mask[150:]), mask[150:], efp_jobs=1)
    floor = compare_jets(a, b, SMALL, seed=1)
    worse = compare_jets(a, bad, SMALL, seed=1)
    assert set(floor) == set(worse) == {"w1m", "w1p", "w1efp", "fpd", "kpd", "kl"}
    for name, value in worse.items():
        assert np.isfinite(value.value) and np.isfinite(value.error) and value.error >= 0, name
        # Seen at 150 jets per half: each metric 2-20x its real-vs-real floor.
        assert value.value > floor[name].value + 3 * floor[name].error, (name, str(value), str(floor[name]))
        assert value.value > 1.5 * floor[name].value, (name, str(value), str(floor[name]))
    # Identical samples: only the resampling noise of the batches is left.
    same = compare_jets(a, a, SMALL, seed=1)
    for name in ("w1m", "w1p", "w1efp", "fpd"):
        assert same[name].value < floor[name].value < worse[name].value, name
    assert abs(same["kpd"].value) < 3 * same["kpd"].error + 1e-6


def test_reporting_scales_and_components(top30):
    jets, mask = top30
    m = w1m(jets[:100], jets[100:200], num_batches=3)
    p = w1p(jets[:100], jets[100:200], mask_real=mask[:100], mask_generated=mask[100:200], num_batches=3)
    assert m.scale == 1e3 and p.scale == 1e3
    assert set(p.components) == {"etarel", "phirel", "ptrel"}
    assert p.value == pytest.approx(np.mean([v for v, _ in p.components.values()]))
    d = p.to_dict()
    assert d["value"] == pytest.approx(p.value * 1e3) and d["raw"] == {"value": p.value, "error": p.error}
    assert d["components"]["ptrel"]["value"] == pytest.approx(p.components["ptrel"][0] * 1e3)
    assert str(MetricValue(0.00064, 0.00005, 1e3)) == "0.64 +- 0.05 x1e-3"


def test_draws_are_seeded_and_jetnets_generator_is_restored(top30):
    jets, _ = top30
    gm = load_jetnet_evaluation()
    before = gm.rng
    first = w1m(jets[:100], jets[100:200], num_batches=3, seed=7)
    assert gm.rng is before
    assert w1m(jets[:100], jets[100:200], num_batches=3, seed=7) == first
    assert w1m(jets[:100], jets[100:200], num_batches=3, seed=8) != first


def test_w1efp_from_features_gives_jetnets_w1efp(top30):
    jets, _ = top30
    a, b = jets[:60], jets[60:130]
    direct = w1efp(a, b, eval_size=50, num_batches=3, seed=3, efp_jobs=1)
    shared = w1efp_from_features(efp_features(a, efp_jobs=1), efp_features(b, efp_jobs=1), eval_size=50,
                                 num_batches=3, seed=3)
    assert direct.scale == shared.scale == 1e5
    assert shared.value == pytest.approx(direct.value, rel=1e-9)
    assert list(shared.components) == list(direct.components)
    np.testing.assert_allclose(list(shared.components.values()), list(direct.components.values()), rtol=1e-9)


def test_jet_observables_are_jetnets(pythia_top150):
    import h5py

    load_jetnet_evaluation()  # jetnet's own __init__ imports energyflow, hence wasserstein
    from jetnet.utils import jet_features

    with h5py.File(pythia_top150, "r") as f:
        pf = np.asarray(f["particle_features"][:50], dtype=np.float64)
    obs = jet_observables(pf[..., :3], pf[..., 3] > 0)
    np.testing.assert_allclose(obs["mass"], jet_features(pf[..., :3])["mass"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(obs["multiplicity"], (pf[..., 3] > 0).sum(1))
    # P = 150 keeps every constituent: the pT of their sum is the jet's, a spike at 1 that the KL
    # metric leaves out. Cut to 30 particles it spreads out and counts, while the multiplicity of
    # top jets becomes a spike at 30.
    assert np.median(obs["pt"]) == pytest.approx(1.0, abs=1e-6)
    assert informative_observables(obs) == ("mass", "multiplicity")
    cut = jet_observables(pf[:, :30, :3], pf[:, :30, 3] > 0)
    assert np.median(cut["multiplicity"]) == 30 and np.quantile(cut["pt"], 0.16) < 0.95
    assert informative_observables(cut) == ("mass", "pt")


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\[N, P, 3\]"):
        w1m(np.zeros((10, 3)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 2 jets"):
        w1m(np.ones((1, 4, 3)), np.ones((5, 4, 3)))
