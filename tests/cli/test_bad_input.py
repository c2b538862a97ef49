"""The bad-input corpus: every malformed input, file or option a user can give, through the real
commands (subprocesses), must end with exit code 2, exactly one ``error:`` line on stderr that
names the file or the option and the problem, no traceback and no library noise, and nothing left
behind (no output, no temporary file).

Each case makes its input in its own directory and names what the error line must contain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from tests.conftest import REPO
from tests.helpers import jetclass_arrays, synthetic_jetnet_arrays, write_rntuple, write_root

pytestmark = pytest.mark.distributed

N_JETS, P = 200, 30
DS1_VOXELS = 368


@dataclass(frozen=True)
class Env:
    """What a case may use: its own directory and the shared good inputs."""

    d: Path
    scheduler: str
    jets: Path  # a good JetNet file (t.hdf5)
    store: Path  # a good jet store
    run: Path  # a good tiny training run (epic-fm, 2 steps)


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Env], tuple[list[str], list[Path]]]  # argv (pcdata/pcmodels ...), outputs that must not appear
    names: str  # a regex the error line must match: the file or option, and the problem


# -- inputs -------------------------------------------------------------------------------------------
def _jetnet(d: Path, name: str = "t.hdf5", edit: Callable | None = None, **replace) -> Path:
    pf, jf = synthetic_jetnet_arrays(N_JETS, P, seed=3)
    if edit is not None:
        edit(pf, jf)
    return _hdf5(d / name, {"particle_features": pf, "jet_features": jf, **replace})


def _calo(d: Path, name: str = "ds1.hdf5", edit: Callable | None = None, **replace) -> Path:
    rng = np.random.default_rng(4)
    e = rng.uniform(1e3, 1e5, (50, 1))
    showers = rng.exponential(10.0, (50, DS1_VOXELS)) * (rng.random((50, DS1_VOXELS)) < 0.2)
    if edit is not None:
        edit(e, showers)
    return _hdf5(d / name, {"incident_energies": e, "showers": showers, **replace})


def _hdf5(path: Path, arrays: dict) -> Path:
    """The datasets (None: left out) in a new HDF5 file."""
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v
    return path


def _root(d: Path, name: str = "j.root", **replace) -> Path:
    pf, jf = synthetic_jetnet_arrays(60, P, seed=5)
    branches = {**jetclass_arrays(pf, jf, seed=5), **replace}
    return write_root(d / name, "tree", {k: v for k, v in branches.items() if v is not None})


def _rntuple(d: Path, name: str = "j.root", **replace) -> Path:
    """The file of :func:`_root` as an RNTuple (ROOT 7's columnar format), in two clusters."""
    pf, jf = synthetic_jetnet_arrays(60, P, seed=5)
    branches = {**jetclass_arrays(pf, jf, seed=5), **replace}
    return write_rntuple(d / name, "tree", {k: v for k, v in branches.items() if v is not None}, clusters=2)


def _zero_rntuple(path: Path, where: str) -> Path:
    """Zero 32 bytes of the RNTuple ``tree``: in its footer (checksummed), or in the middle of
    ``part_px``'s offsets page of the second cluster (zlib-compressed, so the damage shows)."""
    import uproot

    with uproot.open(path) as f:
        r = f["tree"]
        if where == "footer":
            at = r.members["fSeekFooter"] + 8
        else:
            field = next(i for i, x in enumerate(r.field_records) if x.field_name == "part_px")
            page = r.page_link_list[1][next(c.idx for c in r.column_records if c.field_id == field)].pages[0].locator
            at = page.offset + page.num_bytes // 2
    data = bytearray(path.read_bytes())
    data[at : at + 32] = bytes(32)
    path.write_bytes(bytes(data))
    return path


def _strings():
    """60 entries of lists of strings, a jagged field that is not numeric."""
    import awkward as ak

    return ak.Array([["a"] * (i % 4 + 1) for i in range(60)])


def _link(target: Path, link: Path) -> str:
    os.symlink(target, link)
    return str(link)


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


# -- the corpus ---------------------------------------------------------------------------------------
def _ingest_jetnet(f: Callable[[Env], Path], *extra: str, local: bool = False):
    def make(e: Env):
        where = ["--workers", "1"] if local else ["--scheduler", e.scheduler]
        return ["pcdata", "ingest", "jetnet", str(f(e)), "--out", str(e.d / "s.zarr"), *where, *extra], [e.d / "s.zarr"]
    return make


def _ingest_calo(f: Callable[[Env], Path], *extra: str, geometry: str = "ds1-photons"):
    def make(e: Env):
        return (["pcdata", "ingest", "calochallenge", str(f(e)), "--geometry", geometry, "--out", str(e.d / "s.zarr"),
                 "--scheduler", e.scheduler, *extra], [e.d / "s.zarr"])
    return make


def _ingest_root(f: Callable[[Env], Path], *extra: str):
    def make(e: Env):
        return (["pcdata", "ingest", "root", str(f(e)), "--out", str(e.d / "s.zarr"), "--scheduler", e.scheduler,
                 *extra], [e.d / "s.zarr"])
    return make


def _set(index, value):
    def edit(pf, jf):
        target = pf if index[0] == "pf" else jf
        target[index[1:]] = value
    return edit


def _with_attrs(path: Path, **attrs) -> Path:
    with h5py.File(path, "a") as f:
        f.attrs.update(attrs)
    return path


def _entry_store_changed(e: Env, change: Callable[[Path], None]) -> str:
    """A catalog whose registered store (mine.zarr) was changed afterwards by ``change``."""
    root = _catalog_with_entry(e)
    change(e.d / "mine.zarr")
    return str(root)


def _kind_to_showers(s: Path) -> None:
    doc = json.loads((s / "zarr.json").read_text())
    doc["attributes"]["pcdata"]["kind"] = "showers"
    (s / "zarr.json").write_text(json.dumps(doc))


def _replace_by_link(s: Path) -> None:
    copy = _copy(s, s.with_name("copy.zarr"))
    shutil.rmtree(s)
    os.symlink(copy, s)


def _unmask_padding(pf, jf):
    j = int(np.flatnonzero(pf[:, :, 3].sum(1) < P)[0])
    pf[j, -1, 0] = 0.3


def _unsort(pf, jf):
    pf[7, [0, 1]] = pf[7, [1, 0]]


def _mask_not_binary(pf, jf):
    pf[3, 0, 3] = 0.5


def _mask_vs_num(pf, jf):
    jf[9, 3] = pf[9, :, 3].sum() - 1


def _store_doc(e: Env, change: Callable[[dict], None]) -> Path:
    s = _copy(e.store, e.d / "bad.zarr")
    doc = json.loads((s / "zarr.json").read_text())
    change(doc["attributes"]["pcdata"])
    (s / "zarr.json").write_text(json.dumps(doc))
    return s


def _fragment(s: Path) -> Path:
    return sorted(p for p in (s / "fragments").rglob("f0*") if p.is_dir())[0]


def _run_copy(e: Env) -> Path:
    return _copy(e.run, e.d / "run")


def _checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


def _config(e: Env, text: str) -> Path:
    return _write(e.d / "c.yaml", text)


TINY = REPO / "pcmodels" / "configs" / "epic-fm-tiny.yaml"


def _train(*extra: str, config: Callable[[Env], Path] | None = None, store: Callable[[Env], str] | None = None):
    def make(e: Env):
        cfg = str(config(e)) if config else str(TINY)
        where = store(e) if store else str(e.store)
        return ["pcmodels", "train", "--store", where, "--config", cfg, "--out", str(e.d / "r"), "--steps", "1",
                "--quiet", *extra], [e.d / "r"]
    return make


def _sample(run: Callable[[Env], Path] | None = None, *extra: str, out: str = "g.zarr"):
    def make(e: Env):
        where = run(e) if run else e.run
        return (["pcmodels", "sample", "--run", str(where), "--num", "8", "--out", str(e.d / out), "--quiet", *extra],
                [e.d / out])
    return make


def _sweep(**changes):
    """``pcmodels sweep`` of a study of EPiC-FM tiny on the good store, with ``changes`` to its file."""
    def make(e: Env):
        import yaml

        doc = {"store": str(e.store), "model": "epic-fm", "config": "tiny", "space": {"optim.net.lr": [1e-4, 1e-3]},
               "metric": "w1m", "budget": {"trials": 2, "steps": 2}, "pruner": {"name": "none"},
               "cluster": {"workers": 1}, **changes}
        study = _write(e.d / "s.yaml", yaml.safe_dump(doc))
        return ["pcmodels", "sweep", str(study), "--out", str(e.d / "st")], [e.d / "st", e.d / "s"]
    return make


def _resume(edit: Callable[[Path], None]):
    """Continue a run whose checkpoint was damaged: train it 2 more steps."""
    def make(e: Env):
        run = _run_copy(e)
        edit(run)
        cfg = run / "config.yaml"
        return ["pcmodels", "train", "--store", str(e.store), "--config", str(cfg), "--out", str(run), "--quiet"], []
    return make


def _evaluate(real: Callable[[Env], str], generated: Callable[[Env], str], *extra: str):
    def make(e: Env):
        return (["pcmodels", "evaluate", "--real", real(e), "--generated", generated(e), "--out", str(e.d / "report"),
                 "--num", "50", "--no-plots", "--quiet", *extra], [e.d / "report"])
    return make


def _export(fmt: str, *extra: str, store: Callable[[Env], Path] | None = None, out: str = "x.out"):
    def make(e: Env):
        where = store(e) if store else e.store
        return ["pcdata", "export", str(where), "--format", fmt, "--out", str(e.d / out), *extra], [e.d / out]
    return make


def _cmd(*argv: str | Callable[[Env], str], outputs: Callable[[Env], list[Path]] = lambda e: []):
    def make(e: Env):
        return [a(e) if callable(a) else a for a in argv], outputs(e)
    return make


def _readonly(e: Env) -> Path:
    """A read-only file system mounted for the case (root only); skips where it cannot be made."""
    mnt = e.d / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.strip() or r.returncode}")
    return mnt


def _catalog(e: Env) -> Path:
    root = e.d / "cat"
    subprocess.run([sys.executable, "-m", "cli.pcdata", "catalog", "init", str(root), "--allowed-root", str(e.d)],
                   check=True, capture_output=True, cwd=REPO)
    return root


def _catalog_with_entry(e: Env) -> Path:
    root = _catalog(e)
    store = _copy(e.store, e.d / "mine.zarr")
    subprocess.run([sys.executable, "-m", "cli.pcdata", "catalog", "add", "jets", str(store), "--catalog", str(root)],
                   check=True, capture_output=True, cwd=REPO)
    return root


CASES: list[Case] = [
    # JetNet files: the layout, found before any work starts
    Case("jetnet-missing-file", _ingest_jetnet(lambda e: e.d / "t.hdf5"), r"t\.hdf5: no such file"),
    Case("jetnet-directory", _ingest_jetnet(lambda e: (e.d / "t.hdf5").mkdir() or e.d / "t.hdf5"), r"t\.hdf5: is a directory"),
    Case("jetnet-empty-file", _ingest_jetnet(lambda e: _write(e.d / "t.hdf5", b"")), r"t\.hdf5: empty file"),
    Case("jetnet-text-file", _ingest_jetnet(lambda e: _write(e.d / "t.hdf5", "not hdf5\n" * 100)), r"t\.hdf5: not a readable HDF5"),
    Case("jetnet-truncated", _ingest_jetnet(lambda e: _cut(_jetnet(e.d))), r"t\.hdf5: not a readable HDF5 file \(truncated"),
    Case("jetnet-no-particles", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=None)), r"t\.hdf5: missing dataset 'particle_features'"),
    Case("jetnet-no-jets-dataset", _ingest_jetnet(lambda e: _jetnet(e.d, jet_features=None)), r"t\.hdf5: missing dataset 'jet_features'"),
    Case("jetnet-2d-particles", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=np.zeros((N_JETS, 4), "f4"))), r"t\.hdf5: particle_features must have shape \[N, P, 4\]"),
    Case("jetnet-3-features", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=np.zeros((N_JETS, P, 3), "f4"))), r"t\.hdf5: particle_features must have shape"),
    Case("jetnet-zero-particles", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=np.zeros((N_JETS, 0, 4), "f4"))), r"t\.hdf5: particle_features must have shape \[N, P, 4\] with P >= 1"),
    Case("jetnet-3-jet-features", _ingest_jetnet(lambda e: _jetnet(e.d, jet_features=np.zeros((N_JETS, 3), "f4"))), r"t\.hdf5: jet_features must have shape \[N, 4\]"),
    Case("jetnet-row-mismatch", _ingest_jetnet(lambda e: _jetnet(e.d, jet_features=np.zeros((N_JETS - 1, 4), "f4"))), r"t\.hdf5: particle_features has 200 jets but jet_features has 199"),
    Case("jetnet-no-rows", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=np.zeros((0, P, 4), "f4"), jet_features=np.zeros((0, 4), "f4"))), r"t\.hdf5: holds no jets"),
    Case("jetnet-integer-dtype", _ingest_jetnet(lambda e: _jetnet(e.d, particle_features=np.zeros((N_JETS, P, 4), "i4"))), r"t\.hdf5: particle_features must be floating point"),
    Case("jetnet-unknown-class", _ingest_jetnet(lambda e: _jetnet(e.d, "jets.hdf5")), r"jets\.hdf5: cannot tell the jet class"),
    Case("jetnet-bad-label", _ingest_jetnet(lambda e: _jetnet(e.d), "--label", "top-quark"), r"label"),
    Case("jetnet-label-disagrees-with-file", _ingest_jetnet(lambda e: _with_attrs(_jetnet(e.d), jet_class="q"), "--label", "top"),
         r"--label: 't' disagrees with .*t\.hdf5, whose jet_class attribute says 'q'"),
    Case("jetnet-class-attribute-unknown", _ingest_jetnet(lambda e: _with_attrs(_jetnet(e.d), jet_class="h")),
         r"t\.hdf5: attribute jet_class='h' is not a JetNet class"),
    Case("jetnet-mixed-qcd-sample", _ingest_jetnet(lambda e: _with_attrs(_jetnet(e.d, "qcd.hdf5"), process="qcd")),
         r"qcd\.hdf5: a mixed QCD sample \(gluon and quark jets\) has no single JetNet class"),
    Case("jetnet-same-file-twice", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"),
                                        "--scheduler", lambda e: e.scheduler, outputs=lambda e: [e.d / "s.zarr"]), r"t\.hdf5: given twice"),
    Case("jetnet-same-file-two-spellings", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), lambda e: _link(e.jets, e.d / "t-link.hdf5"), "--out",
                                                lambda e: str(e.d / "s.zarr"), "--scheduler", lambda e: e.scheduler, outputs=lambda e: [e.d / "s.zarr"]), r"given twice \(as "),
    Case("ingest-rows-per-fragment-0", _ingest_jetnet(lambda e: e.jets, "--rows-per-fragment", "0"), r"--rows-per-fragment: must be a whole number >= 1, got 0"),
    Case("ingest-rows-per-fragment-negative", _ingest_jetnet(lambda e: e.jets, "--rows-per-fragment", "-5"), r"--rows-per-fragment: must be a whole number >= 1, got -5"),
    Case("ingest-workers-0", _ingest_jetnet(lambda e: e.jets, "--workers", "0", local=True), r"--workers: must be a whole number >= 1, got 0"),
    Case("ingest-workers-and-scheduler", _ingest_jetnet(lambda e: e.jets, "--workers", "2"),
         r"--workers and --scheduler: give one of --workers, --scheduler, --scheduler-file and --cluster"),
    Case("ingest-cluster-file-missing", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"),
                                             "--cluster", lambda e: str(e.d / "c.yaml"), outputs=lambda e: [e.d / "s.zarr"]),
         r"c\.yaml: no such cluster description file"),
    Case("ingest-cluster-unknown-key", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"),
                                            "--cluster", lambda e: str(_write(e.d / "c.yaml", "kind: slurm\nmemory: 2GB\nqueues: short\n")),
                                            outputs=lambda e: [e.d / "s.zarr"]),
         r"c\.yaml: queues: unknown key of a cluster description"),
    Case("ingest-cluster-no-memory", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"),
                                          "--cluster", lambda e: str(_write(e.d / "c.yaml", "kind: htcondor\ncores: 2\n")),
                                          outputs=lambda e: [e.d / "s.zarr"]),
         r"c\.yaml: memory: a htcondor job needs its memory"),
    Case("ingest-scheduler-file-missing", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"),
                                               "--scheduler-file", lambda e: str(e.d / "sched.json"), outputs=lambda e: [e.d / "s.zarr"]),
         r"cannot reach the Dask scheduler at .*sched\.json"),
    Case("ingest-out-url", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", "s3://bucket/x.zarr", "--workers", "1"),
         r"s3://bucket/x\.zarr: outputs are written to POSIX filesystems"),
    Case("ingest-bad-compression", _ingest_jetnet(lambda e: e.jets, "--compression", "brotli"),
         r"--compression: compression 'brotli' is not one of lz4, zstd, lz4hc, blosclz, zlib, none"),
    Case("ingest-bad-splits", _ingest_jetnet(lambda e: e.jets, "--splits", "train=0.7,val=0.7"), r"--splits|split"),
    Case("ingest-splits-not-numbers", _ingest_jetnet(lambda e: e.jets, "--splits", "train=most"), r"--splits|split"),
    Case("ingest-unreachable-scheduler", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(e.d / "s.zarr"), "--scheduler",
                                              "tcp://127.0.0.1:9", outputs=lambda e: [e.d / "s.zarr"]), r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"),
    Case("ingest-out-is-a-file", _ingest_jetnet(lambda e: e.jets, "--out", "placeholder"), r"exists|not a store"),
    Case("ingest-out-read-only", _cmd("pcdata", "ingest", "jetnet", lambda e: str(e.jets), "--out", lambda e: str(_readonly(e) / "s.zarr"),
                                      "--scheduler", lambda e: e.scheduler), r"ro/s\.zarr: .*(read-only|not writable)"),
    Case("ingest-unknown-option", _ingest_jetnet(lambda e: e.jets, "--particles", "30"), r"No such option: --particles"),
    # JetNet files: the values, found by the workers
    Case("jetnet-nan", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("pf", 5, 0, 0), np.nan))), r"t\.hdf5: particle_features has non-finite values \(first at jet 5\)"),
    Case("jetnet-inf", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("pf", 150, 0, 2), np.inf))), r"t\.hdf5: particle_features has non-finite values \(first at jet 150\)"),
    Case("jetnet-nan-jet-feature", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("jf", 12, 0), np.nan))), r"t\.hdf5: jet_features has non-finite values \(first at jet 12\)"),
    Case("jetnet-mask-not-binary", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_mask_not_binary)), r"t\.hdf5: .*mask.* jet 3"),
    Case("jetnet-padding-not-zero", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_unmask_padding)), r"t\.hdf5: .*(padding|masked)"),
    Case("jetnet-negative-num-particles", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("jf", 4, 3), -3))), r"t\.hdf5: num_particles must be an integer from 0 to 2\^24 \(first violation at jet 4\)"),
    Case("jetnet-fractional-num-particles", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("jf", 6, 3), 10.5))), r"t\.hdf5: num_particles must be an integer from 0 to 2\^24 \(first violation at jet 6\)"),
    Case("jetnet-mask-vs-num-particles", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_mask_vs_num)), r"t\.hdf5: mask disagrees with num_particles at jet 9"),
    Case("jetnet-negative-ptrel", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("pf", 8, 0, 2), -0.1))), r"t\.hdf5: .*ptrel.* jet 8"),
    Case("jetnet-unsorted", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_unsort)), r"t\.hdf5: .*not sorted.* jet 7"),
    Case("jetnet-nan-local-cluster", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_set(("pf", 5, 0, 0), np.nan)), local=True), r"t\.hdf5: particle_features has non-finite values"),
    Case("jetnet-mask-local-cluster", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_mask_vs_num), local=True), r"t\.hdf5: mask disagrees with num_particles at jet 9"),
    # CaloChallenge files
    Case("calo-missing-file", _ingest_calo(lambda e: e.d / "ds1.hdf5"), r"ds1\.hdf5: no such file"),
    Case("calo-truncated", _ingest_calo(lambda e: _cut(_calo(e.d))), r"ds1\.hdf5: not a readable HDF5 file"),
    Case("calo-no-showers", _ingest_calo(lambda e: _calo(e.d, showers=None)), r"ds1\.hdf5: .*showers"),
    Case("calo-no-energies", _ingest_calo(lambda e: _calo(e.d, incident_energies=None)), r"ds1\.hdf5: .*incident_energies"),
    Case("calo-wrong-voxels", _ingest_calo(lambda e: _calo(e.d), geometry="ds2"), r"ds1\.hdf5: .*(6480|voxels)"),
    Case("calo-row-mismatch", _ingest_calo(lambda e: _calo(e.d, incident_energies=np.ones((49, 1)) * 1e4)), r"ds1\.hdf5: .*(49|50)"),
    Case("calo-1d-showers", _ingest_calo(lambda e: _calo(e.d, showers=np.ones(50))), r"ds1\.hdf5: .*showers"),
    Case("calo-negative-energy", _ingest_calo(lambda e: _calo(e.d, edit=lambda en, s: s.__setitem__((3, 7), -1.0))), r"ds1\.hdf5: .*negative.* 3"),
    Case("calo-nan-voxel", _ingest_calo(lambda e: _calo(e.d, edit=lambda en, s: s.__setitem__((11, 2), np.nan))), r"ds1\.hdf5: .*non-finite.* 11"),
    Case("calo-zero-incident", _ingest_calo(lambda e: _calo(e.d, edit=lambda en, s: en.__setitem__((2, 0), 0.0))), r"ds1\.hdf5: .*incident.* 2"),
    Case("calo-same-file-twice", _cmd("pcdata", "ingest", "calochallenge", lambda e: str(_calo(e.d)), lambda e: str(e.d / "ds1.hdf5"),
                                      "--geometry", "ds1-photons", "--out", lambda e: str(e.d / "s.zarr"), "--scheduler",
                                      lambda e: e.scheduler, outputs=lambda e: [e.d / "s.zarr"]), r"ds1\.hdf5: given twice"),
    Case("calo-rows-per-fragment-0", _ingest_calo(lambda e: _calo(e.d), "--rows-per-fragment", "0"), r"--rows-per-fragment: must be a whole number >= 1, got 0"),
    Case("calo-unknown-geometry", _ingest_calo(lambda e: _calo(e.d), geometry="ds4"), r"--geometry|ds4"),
    Case("calo-bad-threshold", _ingest_calo(lambda e: _calo(e.d), "--threshold", "-1"), r"--threshold"),
    # ROOT files
    Case("root-missing-file", _ingest_root(lambda e: e.d / "j.root", "--tree", "tree"), r"j\.root: no such file"),
    Case("root-truncated", _ingest_root(lambda e: _cut(_root(e.d)), "--tree", "tree"), r"j\.root: .*(truncated|not a readable ROOT|damaged)"),
    Case("root-not-root", _ingest_root(lambda e: _write(e.d / "j.root", "hello\n" * 300), "--tree", "tree"), r"j\.root: .*ROOT"),
    Case("root-empty-file", _ingest_root(lambda e: _write(e.d / "j.root", b""), "--tree", "tree"), r"j\.root: .*(empty|ROOT)"),
    Case("root-no-tree-given", _ingest_root(lambda e: _root(e.d)), r"--tree"),
    Case("root-missing-tree", _ingest_root(lambda e: _root(e.d), "--tree", "nope"), r"j\.root: .*'nope'"),
    Case("root-missing-branch", _ingest_root(lambda e: _root(e.d, part_energy=None), "--tree", "tree"), r"j\.root: .*(part_energy|branch)"),
    Case("root-mapping-missing", _ingest_root(lambda e: _root(e.d), "--tree", "tree", "--mapping", "/nonexistent/m.yaml"), r"m\.yaml"),
    Case("root-mapping-not-yaml", _cmd("pcdata", "ingest", "root", lambda e: str(_root(e.d)), "--tree", "tree", "--out", lambda e: str(e.d / "s.zarr"),
                                       "--mapping", lambda e: str(_write(e.d / "m.yaml", "a: [1, 2\n")), "--scheduler", lambda e: e.scheduler,
                                       outputs=lambda e: [e.d / "s.zarr"]), r"m\.yaml"),
    Case("root-collection-without-name", _ingest_root(lambda e: _root(e.d), "--tree", "tree", "--layout", "collection"), r"--collection|--layout"),
    Case("root-rntuple-truncated", _ingest_root(lambda e: _cut(_rntuple(e.d)), "--tree", "tree"), r"j\.root: truncated ROOT file"),
    Case("root-rntuple-damaged-footer", _ingest_root(lambda e: _zero_rntuple(_rntuple(e.d), "footer"), "--tree", "tree"),
         r"j\.root: damaged RNTuple 'tree', its header or footer cannot be read"),
    Case("root-rntuple-damaged-page", _ingest_root(lambda e: _zero_rntuple(_rntuple(e.d), "page"), "--tree", "tree"),
         r"j\.root: cannot read entries .* of 'tree' \(error: Error -3 while decompressing"),
    Case("root-rntuple-missing-field", _ingest_root(lambda e: _rntuple(e.d, jet_eta=None), "--tree", "tree"),
         r"j\.root: RNTuple 'tree' has no field 'jet_eta'; did you mean jet_pt"),
    Case("root-rntuple-wrong-type", _ingest_root(lambda e: _rntuple(e.d, jet_pt=jetclass_arrays(*synthetic_jetnet_arrays(60, P, seed=5))["part_px"]),
                                                 "--tree", "tree"),
         r"j\.root: field 'jet_pt' has type 'ROOT::VecOps::RVec<float>', expected a numeric field with one value per entry"),
    Case("root-rntuple-string-field", _ingest_root(lambda e: _rntuple(e.d, part_px=_strings()), "--tree", "tree"),
         r"j\.root: field 'part_px' has type 'ROOT::VecOps::RVec<std::string>', expected a jagged numeric field"),
    Case("root-same-file-twice", _cmd("pcdata", "ingest", "root", lambda e: str(_root(e.d)), lambda e: str(e.d / "j.root"), "--tree", "tree",
                                      "--out", lambda e: str(e.d / "s.zarr"), "--scheduler", lambda e: e.scheduler, outputs=lambda e: [e.d / "s.zarr"]),
         r"j\.root: given twice"),
    # stores
    Case("inspect-missing", _cmd("pcdata", "inspect", lambda e: str(e.d / "none.zarr")), r"none\.zarr: no such store"),
    Case("inspect-a-file", _cmd("pcdata", "inspect", lambda e: str(_write(e.d / "f.zarr", "x"))), r"f\.zarr"),
    Case("inspect-not-a-store", _cmd("pcdata", "inspect", lambda e: str(e.d)), r"case: not a pcdata store"),
    Case("inspect-root-truncated", _cmd("pcdata", "inspect", lambda e: str(_cut(_copy(e.store, e.d / "b.zarr") / "zarr.json").parent)), r"b\.zarr"),
    Case("inspect-root-not-json", _cmd("pcdata", "inspect", lambda e: str(_write(_copy(e.store, e.d / "b.zarr") / "zarr.json", "{]").parent)), r"b\.zarr"),
    Case("inspect-unknown-version", _cmd("pcdata", "inspect", lambda e: str(_store_doc(e, lambda m: m.__setitem__("version", 99)))), r"bad\.zarr: .*version"),
    Case("inspect-unknown-kind", _cmd("pcdata", "inspect", lambda e: str(_store_doc(e, lambda m: m.__setitem__("kind", "muons")))), r"bad\.zarr: .*kind"),
    Case("inspect-negative-count", _cmd("pcdata", "inspect", lambda e: str(_store_doc(e, lambda m: m.__setitem__("num_clouds", -1)))), r"bad\.zarr"),
    Case("export-missing-fragment", _export("jetnet-hdf5", store=lambda e: (lambda s: (shutil.rmtree(_fragment(s)), s)[1])(_copy(e.store, e.d / "b.zarr"))),
         r"b\.zarr: .*(missing|fragment)"),
    Case("export-truncated-shard", _export("jetnet-hdf5", store=lambda e: (lambda s: (_cut(_fragment(s) / "points" / "c.0.0", 0.3), s)[1])(_copy(e.store, e.d / "b.zarr"))),
         r"b\.zarr: fragment f0+: damaged"),
    Case("export-truncated-offsets", _export("parquet", store=lambda e: (lambda s: (_cut(_fragment(s) / "offsets" / "c.0", 0.5), s)[1])(_copy(e.store, e.d / "b.zarr"))),
         r"b\.zarr: fragment f0+: damaged"),
    Case("verify-missing", _cmd("pcdata", "verify", lambda e: str(e.d / "none.zarr")), r"none\.zarr: no such store"),
    Case("export-missing-directory", _export("jetnet-hdf5", out="nodir/x.hdf5"), r"nodir/x\.hdf5: directory .*nodir does not exist"),
    Case("export-misspelled-split", _export("jetnet-hdf5", "--split", "tran"), r"no split 'tran' \(has train, val, test\)"),
    Case("export-zero-particles", _export("jetnet-hdf5", "--num-particles", "0"), r"--num-particles: must be >= 1, got 0"),
    Case("export-unknown-format", _export("root"), r"--format"),
    Case("export-jets-as-showers", _export("calochallenge-hdf5"), r"calochallenge"),
    Case("export-read-only", _cmd("pcdata", "export", lambda e: str(e.store), "--format", "parquet", "--out", lambda e: str(_readonly(e) / "x.parquet")),
         r"ro/x\.parquet: .*(read-only|not writable)"),
    Case("export-parquet-missing-directory", _export("parquet", out="nodir/x.parquet"), r"nodir/x\.parquet: directory"),
    Case("migrate-missing", _cmd("pcdata", "migrate", lambda e: str(e.d / "none.zarr"), lambda e: str(e.d / "m.zarr"), outputs=lambda e: [e.d / "m.zarr"]),
         r"none\.zarr: no such store"),
    # catalogs
    Case("catalog-no-catalog", _cmd("pcdata", "catalog", "resolve", "jets", "--catalog", lambda e: str(e.d / "nocat")), r"nocat"),
    Case("catalog-unknown-name", _cmd("pcdata", "catalog", "resolve", "muons", "--catalog", lambda e: str(_catalog(e))), r"muons"),
    Case("catalog-bad-reference", _cmd("pcdata", "catalog", "resolve", "a@b@c", "--catalog", lambda e: str(_catalog(e))), r"a@b@c"),
    Case("catalog-bad-name", _cmd("pcdata", "catalog", "add", "Bad Name!", lambda e: str(e.store), "--catalog", lambda e: str(_catalog(e))), r"Bad Name!"),
    Case("catalog-store-outside-roots", _cmd("pcdata", "catalog", "add", "jets", lambda e: str(e.store), "--catalog", lambda e: str(_catalog(e))), r"allowed roots|outside"),
    Case("catalog-config-not-yaml", _cmd("pcdata", "catalog", "resolve", "jets", "--catalog",
                                         lambda e: str(_write(_catalog_with_entry(e) / "catalog.yaml", "roots: [\n").parent)), r"catalog\.yaml"),
    Case("catalog-entry-not-json", _cmd("pcdata", "catalog", "resolve", "jets", "--catalog",
                                        lambda e: str((lambda c: ([_write(p, "{") for p in c.rglob("*.json")], c)[1])(_catalog_with_entry(e)))), r"jets|\.json"),
    Case("catalog-entry-moved-outside-roots", _cmd("pcdata", "catalog", "resolve", "jets@1"), r"jets@1 points at .*outside the allowed roots"),
    Case("catalog-entry-store-of-another-kind", _cmd("pcdata", "catalog", "resolve", "jets", "--catalog", lambda e: _entry_store_changed(e, _kind_to_showers)),
         r"jets@1 is a store of jets, but .*mine\.zarr holds showers"),
    Case("catalog-entry-store-replaced-by-link", _cmd("pcdata", "catalog", "resolve", "jets", "--catalog", lambda e: _entry_store_changed(e, _replace_by_link)),
         r"jets@1: .*mine\.zarr was replaced by a symbolic link"),
    Case("catalog-list-bad-public-catalog", _cmd("pcdata", "catalog", "list", "--public-catalog", lambda e: str(_write(e.d / "p.yaml", "datasets: 3\n"))), r"p\.yaml"),
    Case("download-unknown-dataset", _cmd("pcdata", "download", "jetnet:muons", "--dir", lambda e: str(e.d / "dl")), r"jetnet:muons"),
    # generators
    Case("generate-unknown-process", _cmd("pcdata", "generate", "jets", "--process", "higgs", "--num-jets", "10", "--out", lambda e: str(e.d / "h.hdf5"),
                                          outputs=lambda e: [e.d / "h.hdf5"]), r"--process|higgs"),
    Case("generate-zero-jets", _cmd("pcdata", "generate", "jets", "--process", "top", "--num-jets", "0", "--out", lambda e: str(e.d / "t.hdf5"),
                                    outputs=lambda e: [e.d / "t.hdf5"]), r"--num-jets"),
    Case("generate-bad-particles", _cmd("pcdata", "generate", "jets", "--process", "top", "--num-jets", "10", "-P", "40", "--out",
                                        lambda e: str(e.d / "t.hdf5"), outputs=lambda e: [e.d / "t.hdf5"]), r"--num-particles|40"),
    Case("generate-unknown-geometry", _cmd("pcdata", "generate", "showers", "--geometry", "ds9", "--num-showers", "10", "--out",
                                           lambda e: str(e.d / "s.hdf5"), outputs=lambda e: [e.d / "s.hdf5"]), r"--geometry|ds9"),
    Case("generate-missing-directory", _cmd("pcdata", "generate", "showers", "--geometry", "ds1-photons", "--num-showers", "10", "--out",
                                            lambda e: str(e.d / "nodir" / "s.hdf5")), r"nodir/s\.hdf5: directory"),
    Case("pcdata-unknown-command", _cmd("pcdata", "ingset"), r"No such command 'ingset'"),
    # training
    Case("train-missing-store", _train(store=lambda e: str(e.d / "none.zarr")), r"none\.zarr"),
    Case("train-config-missing", _train(config=lambda e: e.d / "none.yaml"), r"none\.yaml"),
    Case("train-config-not-yaml", _train(config=lambda e: _config(e, "model: [\n")), r"c\.yaml"),
    Case("train-config-not-a-mapping", _train(config=lambda e: _config(e, "- 1\n- 2\n")), r"c\.yaml"),
    Case("train-negative-lr-in-file", _train(config=lambda e: _config(e, TINY.read_text().replace("lr: 3.0e-3", "lr: -0.001"))),
         r"c\.yaml: optim\.net\.lr: must be > 0"),
    Case("train-lr-not-a-number", _train("--set", "optim.net.lr=fast"), r"optim\.net\.lr"),
    Case("train-hidden-not-a-number", _train("--set", "network.hidden=big"), r"network\.hidden"),
    Case("train-unknown-key", _train("--set", "network.hiden=8"), r"network\.hiden"),
    Case("train-unknown-section", _train("--set", "netwrk.hidden=8"), r"netwrk"),
    Case("train-set-not-key-value", _train("--set", "nonsense"), r"--set: 'nonsense'"),
    Case("train-pad-0", _train("--set", "data.pad=0"), r"data\.pad"),
    Case("train-batch-size-0", _train("--batch-size", "0"), r"--batch-size|batch_size"),
    Case("train-steps-0", _train("--steps", "0"), r"--steps|steps"),
    Case("train-unknown-model", _cmd("pcmodels", "train", "--store", lambda e: str(e.store), "--model", "gpt", "--out", lambda e: str(e.d / "r"),
                                     outputs=lambda e: [e.d / "r"]), r"--model|gpt"),
    Case("train-shower-model-on-jets", _cmd("pcmodels", "train", "--store", lambda e: str(e.store), "--model", "calopointflow", "--out",
                                            lambda e: str(e.d / "r"), "--steps", "1", outputs=lambda e: [e.d / "r"]), r"calopointflow|showers"),
    Case("train-cuda-without-gpu", _train("--device", "cuda"), r"cuda"),
    Case("train-other-config-into-a-run", _cmd("pcmodels", "train", "--store", lambda e: str(e.store), "--config", str(TINY), "--out",
                                               lambda e: str(_run_copy(e)), "--steps", "3", "--set", "network.hidden=24", "--quiet"),
         r"run|config"),
    # resuming from damaged checkpoints
    Case("resume-truncated-tensors", _resume(lambda r: _cut(_checkpoint(r) / "tensors.safetensors")),
         r"step-0000002/tensors\.safetensors: damaged checkpoint"),
    Case("resume-missing-tensor", _resume(lambda r: _drop_tensor(_checkpoint(r) / "tensors.safetensors")),
         r"step-0000002: checkpoint does not fit this run"),
    Case("resume-meta-without-optimizer", _resume(lambda r: _edit_json(_checkpoint(r) / "meta.json", lambda m: m.pop("optimizers"))),
         r"step-0000002: checkpoint does not fit this run \('optimizers'\)"),
    Case("resume-meta-not-json", _resume(lambda r: _write(_checkpoint(r) / "meta.json", "{")), r"meta\.json: damaged checkpoint"),
    Case("resume-step-past-the-end", _resume(lambda r: _edit_json(_checkpoint(r) / "meta.json", lambda m: m.__setitem__("step", 10**6))),
         r"meta\.json: step 1000000 is past the end of this run \(2 steps\)"),
    Case("resume-last-json-dangling", _resume(lambda r: _write(r / "checkpoints" / "last.json", json.dumps({"step": 7, "path": "step-0000007"}))),
         r"last\.json: points at step-0000007, which is missing"),
    Case("resume-last-json-not-json", _resume(lambda r: _write(r / "checkpoints" / "last.json", "{")), r"last\.json: unreadable checkpoint pointer"),
    # sampling
    Case("sample-missing-run", _sample(lambda e: e.d / "none"), r"none"),
    Case("sample-truncated-run-json", _sample(lambda e: (lambda r: (_cut(r / "run.json"), r)[1])(_run_copy(e))), r"run\.json"),
    Case("sample-run-json-a-list", _sample(lambda e: (lambda r: (_write(r / "run.json", "[1, 2]"), r)[1])(_run_copy(e))), r"run\.json"),
    Case("sample-truncated-weights", _sample(lambda e: (lambda r: (_cut(_checkpoint(r) / "tensors.safetensors"), r)[1])(_run_copy(e))), r"tensors\.safetensors"),
    Case("sample-batch-size-0", _sample(None, "--batch-size", "0"), r"--batch-size: must be >= 1, got 0"),
    Case("sample-steps-0", _sample(None, "--steps", "0"), r"--steps must be >= 1, got 0"),
    Case("sample-num-0", _sample(None, "--num", "0"), r"--num"),
    Case("sample-unknown-sampler", _sample(None, "--sampler", "leapfrog"), r"--sampler|leapfrog"),
    Case("sample-shower-format-for-jets", _sample(None, "--format", "calochallenge-hdf5", out="g.hdf5"), r"calochallenge|showers"),
    Case("sample-out-read-only", _cmd("pcmodels", "sample", "--run", lambda e: str(e.run), "--num", "8", "--out",
                                      lambda e: str(_readonly(e) / "g.zarr"), "--quiet"), r"ro/g\.zarr: .*(read-only|not writable)"),
    # evaluation
    Case("evaluate-missing-real", _evaluate(lambda e: str(e.d / "none.zarr"), lambda e: str(e.store)), r"none\.zarr"),
    Case("evaluate-missing-generated", _evaluate(lambda e: str(e.store), lambda e: str(e.d / "none.zarr")), r"none\.zarr"),
    Case("evaluate-same-sample", _evaluate(lambda e: str(e.store), lambda e: str(e.store)), r"--generated: .*jets\.zarr is the real sample itself"),
    Case("evaluate-generated-not-jets", _evaluate(lambda e: str(e.store), lambda e: str(_calo(e.d))), r"jets\.zarr|ds1\.hdf5"),
    Case("evaluate-misspelled-split", _evaluate(lambda e: str(e.store), lambda e: str(_copy(e.store, e.d / "g.zarr")), "--split", "tset"),
         r"no split 'tset'"),
    Case("evaluate-num-3", _evaluate(lambda e: str(e.store), lambda e: str(_copy(e.store, e.d / "g.zarr")), "--num", "3"), r"--num"),
    Case("evaluate-negative-seed", _evaluate(lambda e: str(e.store), lambda e: str(_copy(e.store, e.d / "g.zarr")), "--seed", "-1"), r"--seed"),
    Case("pcmodels-unknown-option", _cmd("pcmodels", "train", "--stor", "x"), r"No such option: --stor"),
    # -- found by the fuzz targets (tests/fuzz) ------------------------------------------------------
    Case("jetnet-num-particles-beyond-int32", _ingest_jetnet(lambda e: _jetnet(e.d, edit=_truncated_num(2.0**31))),
         r"t\.hdf5: num_particles must be an integer from 0 to 2\^24"),
    Case("jetnet-damaged-group-table", _ingest_jetnet(lambda e: _damage_snod(_jetnet(e.d))),
         r"t\.hdf5: cannot read the layout, the file is damaged"),
    Case("calo-damaged-group-table", _ingest_calo(lambda e: _damage_snod(_calo(e.d))),
         r"ds1\.hdf5: cannot read the layout, the file is damaged"),
    Case("inspect-root-metadata-nested-too-deep", _cmd("pcdata", "inspect", lambda e: str(_deep_root(e))), r"zarr\.json"),
    Case("resume-last-json-leads-outside", _resume(lambda r: _write(r / "checkpoints" / "last.json", json.dumps({"step": 2, "path": "../../x"}))),
         r"last\.json: unreadable checkpoint pointer \(path '\.\./\.\./x'"),
    # -- remote inputs (pcdata/sources/_remote.py; served files: tests/ingest/test_remote.py) ------------
    Case("jetnet-input-s3-url", _cmd("pcdata", "ingest", "jetnet", "s3://bucket/t.hdf5", "--out", lambda e: str(e.d / "s.zarr"),
                                     "--scheduler", lambda e: e.scheduler, outputs=lambda e: [e.d / "s.zarr"]),
         r"s3://bucket/t\.hdf5: cannot read s3:// inputs"),
    Case("root-input-unreachable-url", _cmd("pcdata", "ingest", "root", "http://127.0.0.1:1/j.root", "--tree", "tree", "--out",
                                            lambda e: str(e.d / "s.zarr"), "--scheduler", lambda e: e.scheduler,
                                            outputs=lambda e: [e.d / "s.zarr"]),
         r"http://127\.0\.0\.1:1/j\.root: cannot reach the server \("),
    # -- stores read over HTTP (pcdata/store/remote.py; served stores: tests/store/test_remote.py) ------
    Case("inspect-unreachable-store-url", _cmd("pcdata", "inspect", "http://127.0.0.1:1/s.zarr"),
         r"http://127\.0\.0\.1:1/s\.zarr/zarr\.json: cannot reach the server \("),
    Case("export-unreachable-store-url", _cmd("pcdata", "export", "http://127.0.0.1:1/s.zarr", "--format", "parquet",
                                              "--out", lambda e: str(e.d / "o.parquet"), outputs=lambda e: [e.d / "o.parquet"]),
         r"http://127\.0\.0\.1:1/s\.zarr/zarr\.json: cannot reach the server"),
    # -- study files (pcmodels/sweep/study.py; studies that run: tests/pcmodels/test_sweep.py) ----------
    Case("sweep-unknown-hyperparameter", _sweep(space={"network.hiden": [16, 32]}), r"s\.yaml: space\.network\.hiden"),
    Case("sweep-empty-space", _sweep(space={}), r"s\.yaml: space"),
    Case("sweep-shower-metric-on-jets", _sweep(metric="auc_low"), r"s\.yaml: metric: 'auc_low'"),
    Case("sweep-storage-unknown-database", _sweep(storage="redis://127.0.0.1/0"), r"s\.yaml: storage"),
    Case("sweep-storage-missing-directory", _sweep(storage="sqlite:///no/such/dir/o.db"), r"s\.yaml: storage"),
]


def _truncated_num(value: float):
    def edit(pf, jf):
        jf[np.flatnonzero(pf[:, :, 3].sum(1) == P), 3] = value  # jets with P real particles: any num >= P passes the mask
    return edit


def _damage_snod(path: Path) -> Path:
    path.write_bytes(path.read_bytes().replace(b"SNOD", b"SNOX", 1))  # h5py raised RuntimeError
    return path


def _deep_root(e: Env) -> Path:
    store = _copy(e.store, e.d / "deep.zarr")
    _write(store / "zarr.json", "[" * 100_000)
    return store


def _drop_tensor(path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(path))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(path))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


# -- shared good inputs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory, scheduler):
    from pcdata.ingest import IngestOptions, ingest_jetnet
    from pcmodels.config import load_config
    from pcmodels.training import train

    d = tmp_path_factory.mktemp("good")
    jets = _jetnet(d)
    store = ingest_jetnet([jets], d / "jets.zarr", cluster=scheduler, options=IngestOptions(progress=False)).path
    train(store, d / "run", load_config(TINY, steps=2), progress=False)
    return jets, Path(store), d / "run"


def _special(case: Case, argv: list[str], e: Env) -> list[str]:
    """Arguments a case cannot spell before its directory exists."""
    out = []
    for a in argv:
        if a == "placeholder":
            a = str(_write(e.d / "file.txt", "x"))
        out.append(a)
    if case.id == "catalog-entry-moved-outside-roots":
        root = _catalog_with_entry(e)
        # the entry's store directory replaced by a link to a store outside the allowed roots
        target = _copy(e.store, e.d.parent / f"{e.d.name}-outside.zarr")
        shutil.rmtree(e.d / "mine.zarr")
        os.symlink(target, e.d / "mine.zarr")
        out = [*argv, "--catalog", str(root)]
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path, scheduler, good):
    e = Env(tmp_path / "case", scheduler, *good)
    e.d.mkdir()
    argv, outputs = case.make(e)
    argv = _special(case, argv, e)
    before = _listing(e.d)
    prog, *rest = argv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PCDATA_CATALOG")}
    try:
        r = subprocess.run([sys.executable, "-m", f"cli.{prog}", *rest], capture_output=True, text=True, timeout=240,
                           cwd=REPO, env={**env, "COLUMNS": "200"})
    finally:
        subprocess.run(["umount", str(e.d / "ro")], capture_output=True) if (e.d / "ro").is_mount() else None
    where = f"{' '.join(argv)}\nstdout: {r.stdout[-1500:]}\nstderr: {r.stderr[-3000:]}"
    assert r.returncode == 2, where
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr and "Warning" not in r.stderr, where
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, where
    assert re.search(case.names, errors[0]), f"{errors[0]!r} does not match {case.names!r}\n{where}"
    for path in outputs:
        assert not path.exists() or path in before, f"{path} was left behind\n{where}"
    left = [p for p in _listing(e.d) - before if ".tmp-" in p.name or p.name.startswith(".")]
    assert not left, f"temporary files left behind: {left}\n{where}"


def _listing(d: Path) -> set[Path]:
    return {p for p in d.rglob("*") if not str(p).startswith(str(d / "ro"))}


def test_the_corpus_is_large_and_covers_every_input_kind():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"jetnet", "calo", "root", "inspect", "export", "catalog", "download", "generate", "train", "resume", "sample",
            "evaluate", "sweep"} <= kinds
