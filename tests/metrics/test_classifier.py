"""pcmodels.metrics.classifier: the official DNN classifier separates visibly different showers
and does not separate two samples of one generator; seeded runs repeat."""

from __future__ import annotations

import numpy as np
import pytest

from pcdata.generate.showers import sample_incident_energies, simulate_showers
from pcmodels.metrics.calo import compute_features, high_level_vector
from pcmodels.metrics.classifier import ClassifierConfig, classifier_metric, split_indices

SMALL = dict(hidden=256, layers=2, batch_size=50, lr=1e-3)  # the official network, narrower: seconds on a CPU


def _high_level(n, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    inc = sample_incident_energies(n, "ds2", rng)
    showers = simulate_showers(inc, geometry="ds2", seed=rng)
    showers = showers * np.float32(scale)  # three times the energy for the same incident energy
    return high_level_vector(compute_features(showers, inc, "ds2")).astype(np.float32)


def _reader(x):
    return lambda rows: x[rows]


@pytest.fixture(scope="module")
def samples():
    return _high_level(800, 1), _high_level(800, 2), _high_level(800, 3, scale=3.0)


def test_visibly_different_showers_are_separated(samples):
    real, _, brighter = samples
    res = classifier_metric(_reader(real), len(real), _reader(brighter), len(brighter),
                            ClassifierConfig(epochs=20, seed=0, **SMALL))
    assert res.auc > 0.9 and res.jsd > 0.3
    assert res.sizes == (480, 160, 160) and 1 <= res.best_epoch <= res.epochs_run <= 20
    assert res.probabilities.shape == (320,) and set(np.unique(res.labels)) == {0.0, 1.0}


def test_two_samples_of_one_generator_are_not_separated(samples):
    real, same, _ = samples
    res = classifier_metric(_reader(real), len(real), _reader(same), len(same),
                            ClassifierConfig(epochs=20, seed=0, **SMALL))
    assert abs(res.auc - 0.5) < 0.1 and res.jsd < 0.05


def test_seeded_runs_repeat_and_the_seed_matters(samples):
    real, same, _ = samples
    runs = [classifier_metric(_reader(real), 300, _reader(same), 300, ClassifierConfig(epochs=2, seed=s, **SMALL))
            for s in (5, 5, 6)]
    assert runs[0].auc == runs[1].auc and np.array_equal(runs[0].probabilities, runs[1].probabilities)
    assert not np.array_equal(runs[0].probabilities, runs[2].probabilities)


def test_split_follows_the_fractions_and_covers_every_row():
    parts = split_indices(90, (0.6, 0.2, 0.2), np.random.default_rng(0))
    assert [len(p) for p in parts] == [54, 18, 18]
    assert sorted(np.concatenate(parts).tolist()) == list(range(90))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="epochs"):
        ClassifierConfig(epochs=0)
    with pytest.raises(ValueError, match="split"):
        ClassifierConfig(split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="too few showers"):
        x = np.zeros((3, 4), np.float32)
        classifier_metric(_reader(x), 3, _reader(x), 3, ClassifierConfig(epochs=1, **SMALL))
