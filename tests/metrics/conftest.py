"""Jets for the metric tests: real Pythia top jets (the session's ``pythia_top150``), cut to the
30 hardest particles so that EFPs stay cheap (~650 jets/s)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def top30(pythia_top150) -> tuple[np.ndarray, np.ndarray]:
    """``(jets [300, 30, 3], mask [300, 30])`` from the Pythia file, hardest particles first."""
    import h5py

    with h5py.File(pythia_top150, "r") as f:
        pf = np.asarray(f["particle_features"][:, :30], dtype=np.float32)
    return pf[..., :3], pf[..., 3] > 0

