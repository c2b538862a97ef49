import numpy as np
import pytest

from pcdata import Clouds
from pcdata.store import ChunkSpec, Feature, StoreMeta, write_store


def make_clouds(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 40, size=n)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Clouds(rng.normal(size=(off[-1], 3)).astype(np.float32), off,
                  {"pt": rng.random(n).astype(np.float32), "n": counts.astype(np.int32)}, ("x", "y", "z"))


def template(fingerprint="fp"):
    return StoreMeta(kind="events", coords="none", point_features=(Feature("x"), Feature("y"), Feature("z")),
                     cloud_features=(Feature("pt", "GeV"), Feature("n", dtype="int32")), fingerprint=fingerprint)


SMALL_CHUNKS = ChunkSpec(points_rows=500, clouds=200)


@pytest.fixture
def clouds():
    return make_clouds()


@pytest.fixture
def store_path(tmp_path, clouds):
    path = tmp_path / "s"
    write_store(path, clouds, template(), clouds_per_fragment=700, chunks=SMALL_CHUNKS)
    return path
