"""The JetNet HDF5 layout: validate, read in row blocks, write.

Layout (as the ``jetnet`` library and Zenodo records 6975118 / 6975117 lay it out):

- ``particle_features`` ``[N, P, 4]`` = ``(etarel, phirel, ptrel, mask)``, P = 30 or 150, particles
  by descending pT, zero-padded; ``mask`` is 1 for a real particle.
- ``jet_features`` ``[N, 4]`` = ``(pt, eta, mass, num_particles)``, absolute, GeV.

The class of a file's jets: the root attribute ``jet_class`` (g, q, t, w or z) where the file
has one (``pcdata generate jets`` writes it), else its name (``t150.hdf5``), else ``--label``; an
explicit label that disagrees with the attribute is an error.

``num_particles`` counts the jet's constituents before truncation to P (jetnet clips it with
``min(num_particles, P)``), so the check is ``mask.sum() == min(num_particles, P)``. The store
keeps the value as it is, so an export gives the file back bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import atomic_path
from ..clouds import Clouds
from ._hdf5 import damaged_hdf5, open_hdf5
from ._inputs import check_distinct
from ._remote import input_size, read_error
from ..errors import SourceError

__all__ = [
    "JET_TYPES",
    "PARTICLE_FEATURES",
    "JET_FEATURES",
    "JetNetFile",
    "JetNetSource",
    "label_from_filename",
    "inspect_jetnet_file",
    "read_jetnet_block",
    "JetNetWriter",
    "write_jetnet_hdf5",
]

#: Class names in jetnet's order; the stored ``label`` is the index into this tuple.
JET_TYPES = ("g", "q", "t", "w", "z")
PARTICLE_FEATURES = ("etarel", "phirel", "ptrel")
JET_FEATURES = ("pt", "eta", "mass", "num_particles")
_FILENAME = re.compile(r"^([gqtwz])(30|150)?\.(hdf5|h5)$")
#: The root attribute naming a file's JetNet class.
CLASS_ATTR = "jet_class"
# Process names accepted for a class (those of ``pcdata generate jets`` and the particle names).
_ALIASES = {"top": "t", "gluon": "g", "quark": "q"}


def label_from_filename(path: str | os.PathLike) -> int | None:
    """The JetNet class index from a file name like ``t150.hdf5``, or None if it does not say."""
    m = _FILENAME.match(Path(path).name)
    return JET_TYPES.index(m.group(1)) if m else None


def parse_label(label: str | int) -> int:
    """A class given by name (``t``), process name (``top``) or index (``2``) as its index."""
    if isinstance(label, str) and _ALIASES.get(label, label) in JET_TYPES:
        return JET_TYPES.index(_ALIASES.get(label, label))
    try:
        index = int(label)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(JET_TYPES):
        raise SourceError(f"label: expected one of {', '.join(JET_TYPES)}, {', '.join(_ALIASES)} or 0-4, got {label!r}")
    return index


@dataclass(frozen=True)
class JetNetFile:
    """A validated JetNet file: its path, number of jets and particles, class index."""

    path: str
    n_jets: int
    num_particles: int
    label: int
    size: int


def inspect_jetnet_file(path: str | os.PathLike, label: int | None = None) -> JetNetFile:
    """Check a file's keys and shapes (not its values) and describe it.

    Raises:
        SourceError: missing file or key, not HDF5, wrong shape, no class.
    """
    path = str(path)
    with open_hdf5(path) as f, damaged_hdf5(path, "the layout"):
        for key in ("particle_features", "jet_features"):
            if key not in f:
                raise SourceError(f"{path}: missing dataset {key!r} (found: {', '.join(sorted(f.keys())) or 'none'})")
        pf, jf = f["particle_features"], f["jet_features"]
        if pf.ndim != 3 or pf.shape[2] != 4 or pf.shape[1] == 0:
            raise SourceError(f"{path}: particle_features must have shape [N, P, 4] with P >= 1, found {list(pf.shape)}")
        if jf.ndim != 2 or jf.shape[1] != 4:
            raise SourceError(f"{path}: jet_features must have shape [N, 4], found {list(jf.shape)}")
        if pf.shape[0] != jf.shape[0]:
            raise SourceError(
                f"{path}: particle_features has {pf.shape[0]} jets but jet_features has {jf.shape[0]}"
            )
        if pf.shape[0] == 0:
            raise SourceError(f"{path}: holds no jets")
        for key, ds in (("particle_features", pf), ("jet_features", jf)):
            if ds.dtype.kind != "f":
                raise SourceError(f"{path}: {key} must be floating point, found {ds.dtype}")
        n_jets, num_particles = int(pf.shape[0]), int(pf.shape[1])
        recorded, process = f.attrs.get(CLASS_ATTR), f.attrs.get("process")
    label = _file_class(path, label, recorded, process)
    return JetNetFile(path=path, n_jets=n_jets, num_particles=num_particles, label=label, size=input_size(path))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _file_class(path: str, label: int | None, recorded, process) -> int:
    """The class index of a file: its ``jet_class`` attribute, else ``label``, else its name."""
    if recorded is not None:
        name = _text(recorded)
        if name not in JET_TYPES:
            raise SourceError(f"{path}: attribute {CLASS_ATTR}={name!r} is not a JetNet class "
                              f"({', '.join(JET_TYPES)})")
        if label is not None and JET_TYPES[label] != name:
            raise SourceError(f"label: {JET_TYPES[label]!r} disagrees with {path}, whose {CLASS_ATTR} attribute "
                              f"says {name!r}")
        return JET_TYPES.index(name)
    if label is not None:
        return label
    guess = label_from_filename(path)
    if guess is not None:
        return guess
    if process is not None and _text(process) == "qcd":
        raise SourceError(f"{path}: a mixed QCD sample (gluon and quark jets) has no single JetNet class; "
                          "generate --process g or --process q, or pass --label")
    raise SourceError(
        f"{path}: cannot tell the jet class from the file name (expected g, q, t, w or z, "
        "optionally followed by 150, e.g. t150.hdf5); pass --label"
    )


def _first_bad_row(bad: np.ndarray, start: int) -> int:
    return start + int(np.flatnonzero(bad)[0])


_SCAN_ERRORS = {
    1: "particle_features has non-finite values (first at jet {jet})",
    2: "jet_features has non-finite values (first at jet {jet})",
    3: "mask values must be 0 or 1 (first violation at jet {jet})",
    4: "real particles must come before the padding (mask not a prefix at jet {jet})",
    5: "padding (mask 0) is not zero (first at jet {jet})",
    6: "num_particles must be an integer from 0 to 2^24 (first violation at jet {jet})",
    7: "mask disagrees with num_particles at jet {jet} ({real} real particles, num_particles {num:.0f}, P {P})",
    8: "a real particle has negative ptrel (first at jet {jet})",
    9: "particles are not sorted by descending ptrel (first at jet {jet}); stores keep JetNet's order, sort the file first",
}
_SCAN = _GATHER = None


def _scan_kernel():
    """One pass over a block checking every rule of the layout (compiled by numba, cached on disk).

    numpy needs a pass and a temporary per rule (about 6x slower on JetNet150 blocks). Returns
    ``(code, first bad jet, real particles per jet)``; code 0 when the block is valid, else a key
    of ``_SCAN_ERRORS`` (the first jet breaking any rule, with the first rule it breaks)."""
    global _SCAN
    if _SCAN is None:
        import numba

        @numba.njit(nogil=True, cache=True)
        def scan(pf, jf, num_particles):  # pragma: no cover - compiled
            n, p = pf.shape[0], pf.shape[1]
            n_real = np.zeros(n, np.int64)
            for i in range(n):
                k, padding = 0, False
                for j in range(p):
                    eta, phi, pt, m = pf[i, j, 0], pf[i, j, 1], pf[i, j, 2], pf[i, j, 3]
                    if not (np.isfinite(eta) and np.isfinite(phi) and np.isfinite(pt) and np.isfinite(m)):
                        return 1, i, n_real
                for c in range(jf.shape[1]):
                    if not np.isfinite(jf[i, c]):
                        return 2, i, n_real
                for j in range(p):
                    m = pf[i, j, 3]
                    if m == 1.0:
                        if padding:
                            return 4, i, n_real
                        if pf[i, j, 2] < 0.0:
                            return 8, i, n_real
                        if j > 0 and pf[i, j, 2] > pf[i, j - 1, 2]:
                            return 9, i, n_real
                        k += 1
                    elif m == 0.0:
                        padding = True
                        if pf[i, j, 0] != 0.0 or pf[i, j, 1] != 0.0 or pf[i, j, 2] != 0.0:
                            return 5, i, n_real
                    else:
                        return 3, i, n_real
                n_real[i] = k
                num = jf[i, 3]
                if num != np.round(num) or num < 0 or num > 16777216.0:  # stored as int32, exact in float32
                    return 6, i, n_real
                if k != min(num, num_particles):
                    return 7, i, n_real
            return 0, 0, n_real

        _SCAN = scan
    return _SCAN


def _gather_kernel():
    """The real particles' (eta, phi, pt) of a validated block, packed (one pass, compiled)."""
    global _GATHER
    if _GATHER is None:
        import numba

        @numba.njit(nogil=True, cache=True)
        def gather(pf, n_real, offsets):  # pragma: no cover - compiled
            out = np.empty((offsets[-1], 3), np.float32)
            for i in range(pf.shape[0]):
                o = offsets[i]
                for j in range(n_real[i]):
                    out[o + j, 0] = pf[i, j, 0]
                    out[o + j, 1] = pf[i, j, 1]
                    out[o + j, 2] = pf[i, j, 2]
            return out

        _GATHER = gather
    return _GATHER


def read_jetnet_block(file: JetNetFile, start: int, stop: int) -> Clouds:
    """Read jets ``start:stop`` of a file, check their values, keep only real particles.

    Raises:
        SourceError: non-finite values, a mask that is not 0/1 or not a prefix, non-zero padding,
            a mask that disagrees with ``num_particles``, a negative ptrel, particles not sorted by
            descending ptrel, or a read failure (truncated file).
    """
    path = file.path
    try:
        with open_hdf5(path) as f:
            raw_jf = f["jet_features"][start:stop]
            # Values beyond float32 become inf here (no numpy warning on stderr) and are then
            # refused as non-finite by the scan.
            with np.errstate(over="ignore", invalid="ignore"):
                pf = np.asarray(f["particle_features"][start:stop], dtype=np.float32)
                jf = np.asarray(raw_jf, dtype=np.float32)
    except Exception as err:  # h5py raises OSError/KeyError/ValueError for damaged files
        read_error(path, err, f"jets {start}:{stop}")

    code, row, n_real = _scan_kernel()(pf, jf, file.num_particles)
    if code:
        raise SourceError(f"{path}: " + _SCAN_ERRORS[code].format(jet=start + row, P=file.num_particles,
                                                                  real=n_real[row] if row < len(n_real) else 0,
                                                                  num=jf[row, 3] if row < len(jf) else 0))
    if raw_jf.dtype != np.float32:
        changed = np.flatnonzero(jf[:, 3] != raw_jf[:, 3])  # an integer float32 cannot hold
        if len(changed):
            raise SourceError(f"{path}: " + _SCAN_ERRORS[6].format(jet=start + int(changed[0])))
    offsets = np.zeros(len(pf) + 1, dtype=np.int64)
    np.cumsum(n_real, out=offsets[1:])
    num = jf[:, 3]
    return Clouds(
        points=_gather_kernel()(pf, n_real, offsets),
        offsets=offsets,
        fields={
            "pt": jf[:, 0].copy(),
            "eta": jf[:, 1].copy(),
            "mass": jf[:, 2].copy(),
            "num_particles": num.astype(np.int32),
            "label": np.full(len(pf), file.label, dtype=np.int32),
        },
        point_features=PARTICLE_FEATURES,
    )


@dataclass(frozen=True)
class JetNetSource:
    """JetNet files as an ingest source: validated up front, read in row blocks on workers."""

    files: tuple[JetNetFile, ...]

    kind = "jets"
    coords = "relative-hadronic"
    name = "jetnet"

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], label: str | int | None = None) -> "JetNetSource":
        """Validate every file's layout (cheap: metadata only) before anything is written."""
        if not paths:
            raise SourceError("no input files given")
        index = None if label is None else parse_label(label)
        check_distinct(paths)
        return cls(tuple(inspect_jetnet_file(p, index) for p in paths))

    @property
    def num_particles(self) -> int:
        return max(f.num_particles for f in self.files)

    def rows(self) -> list[int]:
        return [f.n_jets for f in self.files]

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        return read_jetnet_block(self.files[file_index], start, stop)


# -- writing ---------------------------------------------------------------------------------------


class JetNetWriter:
    """Write a JetNet file block by block, atomically: the file appears only when complete.

    Example:
        >>> with JetNetWriter("t.hdf5", n_jets=1000, num_particles=30) as w:  # doctest: +SKIP
        ...     w.write(0, particle_features, jet_features)
    """

    def __init__(self, path: str | os.PathLike, *, n_jets: int, num_particles: int, compression: str | None = None,
                 attrs: dict[str, str] | None = None):
        self.path = Path(path)
        self.attrs = dict(attrs or {})  # root attributes, e.g. {"jet_class": "t"}
        self.n_jets = int(n_jets)
        self.num_particles = int(num_particles)
        self.compression = compression
        self._stack = contextlib.ExitStack()
        self._written = 0

    def __enter__(self) -> "JetNetWriter":
        import h5py

        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(h5py.File(tmp, "w"))
        self._file.attrs.update(self.attrs)
        chunk_rows = max(1, min(self.n_jets, 1024))
        opts = dict(compression=self.compression) if self.compression else {}
        self._pf = self._file.create_dataset(
            "particle_features", shape=(self.n_jets, self.num_particles, 4), dtype="f4",
            chunks=(chunk_rows, self.num_particles, 4) if self.n_jets else None, **opts,
        )
        self._jf = self._file.create_dataset(
            "jet_features", shape=(self.n_jets, 4), dtype="f4", chunks=(chunk_rows, 4) if self.n_jets else None, **opts
        )
        self._pf.attrs["features"] = list(PARTICLE_FEATURES) + ["mask"]
        self._jf.attrs["features"] = list(JET_FEATURES)
        return self

    def write(self, start: int, particle_features: np.ndarray, jet_features: np.ndarray) -> None:
        """Write jets ``start:start+len(block)``."""
        stop = start + len(particle_features)
        self._pf[start:stop] = particle_features
        self._jf[start:stop] = jet_features
        self._written += stop - start

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._written != self.n_jets:
            exc = ValueError(f"{self.path}: wrote {self._written} of {self.n_jets} jets")
            self._stack.__exit__(type(exc), exc, None)
            raise exc
        self._stack.__exit__(exc_type, exc, tb)


def write_jetnet_hdf5(
    path: str | os.PathLike, particle_features: np.ndarray, jet_features: np.ndarray, *, compression: str | None = None
) -> None:
    """Write whole arrays as one JetNet file (atomically)."""
    with JetNetWriter(path, n_jets=len(jet_features), num_particles=particle_features.shape[1], compression=compression) as w:
        w.write(0, particle_features, jet_features)


def clouds_to_jetnet(clouds: Clouds, num_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """Clouds in relative coordinates as JetNet arrays: particles by descending ptrel, truncated or
    zero-padded to ``num_particles``, with the mask as fourth feature.

    ``num_particles`` in ``jet_features`` is the cloud field when present (so an ingested file
    round-trips exactly), else the cloud's multiplicity.
    """
    names = clouds.point_features
    if tuple(names[:3]) != PARTICLE_FEATURES:
        raise ValueError(f"expected point features {PARTICLE_FEATURES}, found {names}")
    cloud_id = np.repeat(np.arange(len(clouds)), clouds.counts)
    # Stable sort by (cloud, -ptrel): an already-sorted store keeps its exact particle order.
    order = np.lexsort((-clouds.points[:, 2], cloud_id))
    ordered = Clouds(clouds.points[order], clouds.offsets, clouds.fields, names)
    padded = ordered.padded(num_particles)
    pf = np.concatenate([padded.points[:, :, :3], padded.mask[:, :, None].astype(np.float32)], axis=2)
    f = clouds.fields
    num = f["num_particles"] if "num_particles" in f else clouds.counts
    jf = np.stack(
        [f.get("pt", np.zeros(len(clouds))), f.get("eta", np.zeros(len(clouds))), f.get("mass", np.zeros(len(clouds))), num],
        axis=1,
    ).astype(np.float32)
    return pf.astype(np.float32), jf

