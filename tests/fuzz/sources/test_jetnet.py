"""Fuzz the JetNet HDF5 reader (inspect, then read every row) with mutated and damaged files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block
from tests.fuzz._fuzz import project_error_or, run_for
from tests.fuzz.sources._hdf5 import array_edits, byte_damage, write_hdf5
from tests.helpers import synthetic_jetnet_arrays

pytestmark = pytest.mark.fuzz

P = 5
PF, JF = synthetic_jetnet_arrays(6, P, seed=1)
TRUNCATED = (6.0, 5.5, 2.0**24, 2.0**24 + 1, 2.0**31, 1e30, 1e300, np.inf)


def _check_clouds(clouds, path: Path, start: int, stop: int) -> None:
    """What a successful read promises: the file's rules hold and the values are the file's."""
    import h5py

    with h5py.File(path, "r") as f:
        pf, jf = f["particle_features"][start:stop], f["jet_features"][start:stop]
    num = jf[:, 3]
    assert np.array_equal(clouds.fields["num_particles"], num), "num_particles was changed on reading"
    assert np.array_equal(clouds.counts, np.minimum(num, pf.shape[1])), "cloud sizes disagree with num_particles"
    for name, col in (("pt", 0), ("eta", 1), ("mass", 2)):
        assert np.array_equal(clouds.fields[name], jf[:, col].astype(np.float32)), name
    assert np.isfinite(clouds.points).all() and np.isfinite(clouds.fields["pt"]).all()
    pt = clouds.points[:, 2]
    assert (pt >= 0).all()
    for i in range(len(clouds)):
        p = pt[clouds.offsets[i]:clouds.offsets[i + 1]]
        assert (np.diff(p) <= 0).all(), "particles not sorted by descending ptrel"
        assert np.array_equal(clouds.points[clouds.offsets[i]:clouds.offsets[i + 1]], pf[i, :len(p), :3].astype(np.float32))


def _target(data) -> None:
    jf = JF
    if data.draw(st.integers(0, 3), label="edit num_particles") == 0:
        # num_particles of the jets whose P slots are all real: any value >= P passes the mask check
        jf = JF.astype(np.float64)
        jf[PF[..., 3].sum(1) == P, 3] = data.draw(st.sampled_from(TRUNCATED), label="num_particles")
    arrays = data.draw(array_edits({"particle_features": PF, "jet_features": jf}), label="arrays")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.hdf5"
        write_hdf5(path, arrays, chunked=data.draw(st.booleans(), label="chunked"))
        if data.draw(st.integers(0, 3), label="damage") == 0:
            path.write_bytes(data.draw(byte_damage(path.read_bytes()), label="bytes"))
        info = project_error_or(lambda: inspect_jetnet_file(path, label=2), str(path))
        if info is None:
            return
        start = data.draw(st.integers(0, info.n_jets - 1), label="start")
        clouds = project_error_or(lambda: read_jetnet_block(info, start, info.n_jets), str(path))
        if clouds is not None:
            _check_clouds(clouds, path, start, info.n_jets)


def test_jetnet_reader_raises_only_project_errors():
    run_for(_target, st.data())
