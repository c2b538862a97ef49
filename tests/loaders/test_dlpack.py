import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pcdata.loaders import PointCloudLoader, to_dlpack, to_jax, to_numpy


@pytest.fixture(scope="module")
def batch(jet_store):
    return next(iter(PointCloudLoader(jet_store, split=None, batch_size=32, pad=30)))


def test_torch_from_dlpack_shares_the_batch_memory(batch):
    for key, value in batch.items():
        again = torch.from_dlpack(value)
        assert again.data_ptr() == value.data_ptr() and torch.equal(again, value), key


def test_numpy_views_share_memory(batch):
    arrays = to_numpy(batch)
    for key, value in batch.items():
        assert np.shares_memory(arrays[key], value.numpy()), key
    arrays["points"][0, 0, 0] = 123.0  # proof of sharing: the write shows in the tensor
    assert batch["points"][0, 0, 0] == 123.0


def test_to_dlpack_applies_any_consumer(batch):
    out = to_dlpack({**batch, "note": "kept"}, torch.from_dlpack)
    assert out["note"] == "kept" and out["mask"].dtype == torch.bool


_JAX_CHECK = """
import sys, numpy as np
from pcdata.loaders import PointCloudLoader, to_jax
batch = next(iter(PointCloudLoader(sys.argv[1], split=None, batch_size=32, pad=30)))
arrays = to_jax(batch)
for key, value in batch.items():
    np.testing.assert_array_equal(np.asarray(arrays[key]), value.numpy())
# No copy for the float and bool tensors (int64 becomes int32 unless jax_enable_x64: a copy).
for key in ("points", "mask", "cloud"):
    assert arrays[key].unsafe_buffer_pointer() == batch[key].data_ptr(), key
print("ok", sorted(arrays))
"""


def test_jax_reads_the_batch_through_dlpack(jet_store):
    # In a child process: JAX starts threads that make every later fork (DataLoader workers) in
    # the test process unsafe, and it warns about it.
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (pip install 'jax[cpu]')")
    proc = subprocess.run([sys.executable, "-c", _JAX_CHECK, str(jet_store.path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-2000:]


def test_to_jax_without_jax_says_how_to_install(batch, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    monkeypatch.setitem(sys.modules, "jax.dlpack", None)
    with pytest.raises(ImportError, match="pip install"):
        to_jax(batch)
