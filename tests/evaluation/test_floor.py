"""pcmodels.evaluation.floor: the floor's halves are disjoint, equally large and seeded."""

from __future__ import annotations

import numpy as np

from pcmodels.evaluation.floor import floor_halves


def test_halves_are_disjoint_equal_and_seeded():
    for n in (2, 3, 10, 101, 5000):
        a, b = floor_halves(n, np.random.default_rng(1))
        assert len(a) == len(b) == n // 2
        assert not set(a.tolist()) & set(b.tolist())
        assert np.all(np.diff(a) > 0) and np.all(np.diff(b) > 0) and max(a.max(), b.max()) < n
    a1, _ = floor_halves(1000, np.random.default_rng(7))
    a2, _ = floor_halves(1000, np.random.default_rng(7))
    a3, _ = floor_halves(1000, np.random.default_rng(8))
    assert np.array_equal(a1, a2) and not np.array_equal(a1, a3)
    # random, not the first and second half of the file
    a, _ = floor_halves(1000, np.random.default_rng(0))
    assert 0.3 < float(np.mean(a < 500)) < 0.7
