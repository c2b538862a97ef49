"""Small stores for the loader tests, built once per session with ``write_store``."""

from __future__ import annotations

import numpy as np
import pytest

from pcdata import Clouds, open_store
from pcdata.store import ChunkSpec, Feature, StoreMeta, write_store

# Small chunks and fragments: many blocks, pieces and fragment boundaries in a few thousand clouds.
CHUNKS = ChunkSpec(points_rows=1500, clouds=500)


def make_jets(n: int = 3000, seed: int = 0) -> Clouds:
    """Jet-like clouds: 0..59 particles (some empty), sorted by descending pt_rel."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 60, size=n)
    counts[rng.choice(n, 20, replace=False)] = 0
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pts = rng.normal(0, 0.2, size=(off[-1], 3)).astype(np.float32)
    pts[:, 2] = rng.exponential(0.05, size=off[-1]).astype(np.float32)
    fields = {"pt": rng.normal(1000, 50, n).astype(np.float32), "eta": rng.uniform(-2, 2, n).astype(np.float32),
              "n": counts.astype(np.int32)}
    return Clouds(pts, off, fields, ("eta_rel", "phi_rel", "pt_rel"))


def jets_meta() -> StoreMeta:
    return StoreMeta(kind="jets", coords="relative-hadronic",
                     point_features=(Feature("eta_rel"), Feature("phi_rel"), Feature("pt_rel")),
                     cloud_features=(Feature("pt", "GeV"), Feature("eta"), Feature("n", dtype="int32")),
                     fingerprint="loader-tests")


def make_showers(n: int = 400, seed: int = 1) -> Clouds:
    """Shower-like clouds: integer (layer, alpha, r) cells and positive energies, 50..400 hits."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(50, 400, size=n)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    m = int(off[-1])
    pts = np.stack([rng.integers(0, 45, m), rng.integers(0, 16, m), rng.integers(0, 9, m),
                    rng.exponential(0.01, m) + 1e-4], axis=1).astype(np.float32)
    return Clouds(pts, off, {"energy_in": rng.uniform(1, 1000, n).astype(np.float32)}, ("layer", "alpha", "r", "energy"))


def showers_meta() -> StoreMeta:
    return StoreMeta(kind="showers", coords="cylindrical-cells",
                     point_features=tuple(Feature(f) for f in ("layer", "alpha", "r", "energy")),
                     cloud_features=(Feature("energy_in", "MeV"),), fingerprint="loader-tests-showers")


@pytest.fixture(scope="session")
def jets() -> Clouds:
    return make_jets()


@pytest.fixture(scope="session")
def jet_store(tmp_path_factory, jets):
    path = tmp_path_factory.mktemp("loaders") / "jets"
    write_store(path, jets, jets_meta(), clouds_per_fragment=1100, chunks=CHUNKS)
    return open_store(path)


@pytest.fixture(scope="session")
def shower_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("loaders") / "showers"
    write_store(path, make_showers(), showers_meta(), clouds_per_fragment=150, chunks=ChunkSpec(points_rows=8000))
    return open_store(path)


def collect(loader) -> dict[str, list]:
    """Every batch of one pass, as lists of numpy arrays per key."""
    out: dict[str, list] = {}
    for batch in loader:
        for k, v in batch.items():
            out.setdefault(k, []).append(v.numpy())
    return out


def order_of(loader) -> np.ndarray:
    """Global cloud indices of one pass, in the order they came."""
    return np.concatenate([b["index"].numpy() for b in loader] or [np.zeros(0, np.int64)])
