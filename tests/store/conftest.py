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


def fragment_dirs(store_path):
    """The fragment directories of a format 2 store, in fragment order."""
    return sorted(p for p in (store_path / "fragments").glob("g*/d*/f*") if p.is_dir())


def shard(store_path, k, array="points"):
    """The shard file of ``array`` (``points``, ``offsets``, ``cloud/<name>``) of fragment ``k``."""
    directory = fragment_dirs(store_path)[k] / array
    return directory / ("c.0.0" if array == "points" else "c.0")


def shard_entries(path):
    """``[(offset, nbytes)]`` of every inner chunk of a shard file (its index, read independently)."""
    import json

    meta = json.loads((path.parent / "zarr.json").read_text())
    conf = meta["codecs"][0]["configuration"]
    n = -(-meta["shape"][0] // conf["chunk_shape"][0])
    data = path.read_bytes()
    return np.frombuffer(data[len(data) - 16 * n - 4 : -4], dtype="<u8").reshape(n, 2).tolist()


@pytest.fixture
def store_v1(tmp_path):
    """A format 1 store written by the release before format 2 (``make_clouds(300, seed=3)`` in
    fragments of 120 clouds, points chunks of 500 rows, lz4), copied to a scratch directory."""
    import shutil
    from pathlib import Path

    path = tmp_path / "v1"
    shutil.copytree(Path(__file__).parents[1] / "data" / "store-v1", path)
    return path
