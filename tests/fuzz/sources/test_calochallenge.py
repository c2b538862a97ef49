"""Fuzz the CaloChallenge HDF5 reader (inspect, then read rows) with mutated and damaged files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from pcdata.geometry import clouds_to_voxels
from pcdata.sources.calochallenge import inspect_calochallenge_file, read_calochallenge_block
from tests.fuzz._fuzz import project_error_or, run_for
from tests.fuzz.sources._hdf5 import array_edits, byte_damage, write_hdf5

pytestmark = pytest.mark.fuzz

GEOMETRY, VOXELS = "ds1-photons", 368
_rng = np.random.default_rng(4)
INC = _rng.uniform(1e3, 1e5, (4, 1))
SHOWERS = (_rng.exponential(10.0, (4, VOXELS)) * (_rng.random((4, VOXELS)) < 0.2)).astype(np.float32)


def _target(data) -> None:
    arrays = data.draw(array_edits({"incident_energies": INC, "showers": SHOWERS}), label="arrays")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ds1.hdf5"
        write_hdf5(path, arrays, chunked=data.draw(st.booleans(), label="chunked"))
        if data.draw(st.integers(0, 3), label="damage") == 0:
            path.write_bytes(data.draw(byte_damage(path.read_bytes()), label="bytes"))
        info = project_error_or(lambda: inspect_calochallenge_file(path, GEOMETRY), str(path))
        if info is None:
            return
        start = data.draw(st.integers(0, info.n_showers - 1), label="start")
        clouds = project_error_or(lambda: read_calochallenge_block(info, start, info.n_showers), str(path))
        if clouds is None:
            return
        import h5py

        with h5py.File(path, "r") as f:
            inc, showers = f["incident_energies"][start:], f["showers"][start:]
        # A successful read keeps the file's values: energies finite, >= 0, the same voxels back.
        assert np.isfinite(clouds.points).all() and (clouds.points[:, 3] > 0).all()
        assert np.array_equal(clouds.fields["incident_energy"], inc.reshape(-1))
        with np.errstate(all="ignore"):
            assert np.array_equal(clouds_to_voxels(clouds, GEOMETRY)[1], showers.astype(np.float32))


def test_calochallenge_reader_raises_only_project_errors():
    run_for(_target, st.data())
