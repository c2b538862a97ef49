"""ROOT trees as point-cloud sources, read with uproot in entry ranges.

Two layouts groups actually hold:

- **per-jet trees** (the JetClass layout): one entry per jet, jagged constituent branches
  ``part_px, part_py, part_pz, part_energy`` (absolute four-vectors) or ``part_deta, part_dphi``
  with ``part_pt`` (relative), jet branches ``jet_pt, jet_eta, jet_phi, jet_energy,
  jet_nparticles`` and one-hot labels ``label_*``. They become jet clouds in relative hadronic
  coordinates (etarel, phirel, ptrel), particles by descending pT, as JetNet's.
- **per-event collections** (the NanoAOD style): a counter ``nX`` and jagged ``X_pt, X_eta, ...``;
  one cloud per event with the chosen features, events without objects kept as empty clouds, and
  optional per-event fields (``run``, ``event``, ...).

Every read is a picklable call over ``(file, tree, entry_start, entry_stop)`` that opens the file
itself, so Dask workers never share a handle and files larger than memory are read step by step.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .._io import read_yaml_mapping
from ..clouds import Clouds
from ..errors import SourceError
from ..geometry.jets import mass_from_energy, pxpypze_to_ptetaphim, to_relative, wrap_phi

__all__ = ["JetTreeSpec", "CollectionSpec", "RootFile", "RootJetSource", "RootCollectionSource", "load_mapping"]

_UNITS = {"pt": "GeV", "mass": "GeV", "energy": "GeV", "e": "GeV", "phi": "rad", "px": "GeV", "py": "GeV", "pz": "GeV"}


@dataclass(frozen=True)
class JetTreeSpec:
    """Branch names of a per-jet tree. Constituents come either as four-vectors (``px, py, pz,
    energy``) or relative (``deta, dphi`` plus ``pt``); the first complete set found is used."""

    px: str = "part_px"
    py: str = "part_py"
    pz: str = "part_pz"
    energy: str = "part_energy"
    deta: str = "part_deta"
    dphi: str = "part_dphi"
    pt: str = "part_pt"
    jet_pt: str = "jet_pt"
    jet_eta: str = "jet_eta"
    jet_phi: str = "jet_phi"
    jet_energy: str = "jet_energy"
    jet_nparticles: str = "jet_nparticles"
    labels: str = "label_*"


@dataclass(frozen=True)
class CollectionSpec:
    """A NanoAOD-style collection ``X``: counter ``nX``, features read from ``X_<feature>``."""

    collection: str
    features: tuple[str, ...]
    event_fields: tuple[str, ...] = ()

    @property
    def counter(self) -> str:
        return f"n{self.collection}"

    def branch(self, feature: str) -> str:
        return f"{self.collection}_{feature}"


def load_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """Read a branch-mapping YAML file: ``layout: jets|collection``, ``tree``, and either the
    :class:`JetTreeSpec` field names under ``branches:`` or ``collection``, ``features`` and
    ``event_fields``."""
    doc = read_yaml_mapping(path, what="mapping file", error=SourceError)
    allowed = {"layout", "tree", "branches", "collection", "features", "event_fields"}
    unknown = set(doc) - allowed
    if unknown:
        raise SourceError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(allowed))})")
    if doc.get("layout", "jets") not in ("jets", "collection"):
        raise SourceError(f"{path}: layout must be 'jets' or 'collection', found {doc.get('layout')!r}")
    branches = doc.get("branches", {}) or {}
    bad = set(branches) - set(JetTreeSpec.__dataclass_fields__)
    if bad:
        raise SourceError(f"{path}: unknown branch role {sorted(bad)[0]!r} (roles: {', '.join(JetTreeSpec.__dataclass_fields__)})")
    return doc


@dataclass(frozen=True)
class RootFile:
    path: str
    tree: str
    entries: int
    size: int


def _open_tree(path: str, tree: str):
    import uproot

    p = Path(path)
    if not p.exists():
        raise SourceError(f"{path}: no such file")
    if p.stat().st_size == 0:
        raise SourceError(f"{path}: empty file (0 bytes)")
    try:
        f = uproot.open(path)
    except Exception as err:  # uproot raises ValueError/OSError/DeserializationError for non-ROOT input
        raise SourceError(f"{path}: not a readable ROOT file ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    end, size = getattr(f.file, "fEND", None), p.stat().st_size
    if isinstance(end, int) and size < end:  # remote sources report no size: checked where local
        f.close()
        raise SourceError(f"{path}: truncated ROOT file ({size} bytes, its header says {end})")
    try:
        t = f[tree]
    except Exception as err:
        keys = sorted({k.split(";")[0] for k in f.keys()})
        f.close()
        near = difflib.get_close_matches(tree, keys, n=3)
        hint = f"; did you mean {', '.join(near)}" if near else f" (keys: {', '.join(keys[:10]) or 'none'})"
        raise SourceError(f"{path}: no tree {tree!r}{hint}") from err
    if not hasattr(t, "num_entries"):
        f.close()
        raise SourceError(f"{path}: {tree!r} is not a TTree")
    return f, t


def _missing(path: str, tree, branch: str) -> SourceError:
    near = difflib.get_close_matches(branch, list(tree.keys()), n=3)
    hint = f"; did you mean {', '.join(near)}" if near else ""
    return SourceError(f"{path}: tree {tree.name!r} has no branch {branch!r}{hint}")


def _check_type(path: str, tree, branch: str, jagged: bool) -> None:
    """Raise unless ``branch`` holds numbers, jagged (one list per entry) or flat as asked."""
    from uproot.interpretation.jagged import AsJagged
    from uproot.interpretation.numerical import AsDtype

    if branch not in tree:
        raise _missing(path, tree, branch)
    b = tree[branch]
    try:
        interp = b.interpretation
    except Exception:  # uproot raises when it cannot interpret a branch at all
        interp = None
    if jagged:
        ok = isinstance(interp, AsJagged) and isinstance(interp.content, AsDtype) and interp.content.to_dtype.kind in "fiu"
        expected = "a jagged numeric branch (one list of numbers per entry)"
    else:
        ok = isinstance(interp, AsDtype) and interp.to_dtype.kind in "fiub" and interp.to_dtype.shape == ()
        expected = "a numeric branch with one value per entry"
    if not ok:
        raise SourceError(f"{path}: branch {branch!r} has type {b.typename!r}, expected {expected}")


def _read(path: str, tree: str, branches: Sequence[str], start: int, stop: int):
    f, t = _open_tree(path, tree)
    try:
        return t.arrays(list(branches), entry_start=start, entry_stop=stop, library="ak")
    except Exception as err:  # damaged baskets surface as several uproot/zlib error types
        raise SourceError(f"{path}: cannot read entries {start}:{stop} of {tree!r} ({type(err).__name__}: {err})") from err
    finally:
        f.close()


def _counts(path: str, arrays, names: Sequence[str], start: int) -> np.ndarray:
    """Per-entry lengths of jagged branches, which must agree with each other."""
    import awkward as ak

    ref = np.asarray(ak.num(arrays[names[0]], axis=1), dtype=np.int64)
    for name in names[1:]:
        n = np.asarray(ak.num(arrays[name], axis=1), dtype=np.int64)
        bad = np.flatnonzero(n != ref)
        if bad.size:
            i = int(bad[0])
            raise SourceError(
                f"{path}: jagged branches {names[0]!r} and {name!r} disagree in length at entry {start + i} "
                f"({int(ref[i])} vs {int(n[i])})"
            )
    return ref


def _flat(arrays, name: str, dtype=np.float64) -> np.ndarray:
    import awkward as ak

    return np.asarray(ak.to_numpy(ak.flatten(arrays[name], axis=1)), dtype=dtype)


def _inspect_files(paths: Sequence[str | os.PathLike], tree: str, jagged: Sequence[str], flat: Sequence[str]) -> tuple[RootFile, ...]:
    if not paths:
        raise SourceError("no input files given")
    out = []
    for p in map(str, paths):
        f, t = _open_tree(p, tree)
        try:
            for b in jagged:
                _check_type(p, t, b, jagged=True)
            for b in flat:
                _check_type(p, t, b, jagged=False)
            out.append(RootFile(p, tree, int(t.num_entries), os.path.getsize(p)))
        finally:
            f.close()
    return tuple(out)


@dataclass(frozen=True)
class RootJetSource:
    """Per-jet trees (JetClass layout) -> jet clouds in relative hadronic coordinates."""

    files: tuple[RootFile, ...]
    spec: JetTreeSpec
    mode: Literal["four-vector", "relative"]
    labels: tuple[str, ...] = ()

    name = "root-jets"
    kind = "jets"
    coords = "relative-hadronic"

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], *, tree: str, spec: JetTreeSpec = JetTreeSpec()) -> "RootJetSource":
        """Check every file's tree and branch types (metadata only) and pick the constituent mode."""
        first = str(paths[0]) if paths else ""
        if not paths:
            raise SourceError("no input files given")
        f, t = _open_tree(first, tree)
        try:
            keys = set(t.keys())
            mode = "four-vector" if {spec.px, spec.py, spec.pz, spec.energy} <= keys else "relative"
            labels = tuple(sorted(k for k in keys if fnmatch.fnmatch(k, spec.labels))) if spec.labels else ()
        finally:
            f.close()
        jagged = [spec.px, spec.py, spec.pz, spec.energy] if mode == "four-vector" else [spec.deta, spec.dphi, spec.pt]
        flat = [spec.jet_pt, spec.jet_eta, spec.jet_phi, spec.jet_energy, *labels]
        return cls(_inspect_files(paths, tree, jagged, flat), spec, mode, labels)

    def rows(self) -> list[int]:
        return [f.entries for f in self.files]

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        s, f = self.spec, self.files[file_index]
        jagged = [s.px, s.py, s.pz, s.energy] if self.mode == "four-vector" else [s.deta, s.dphi, s.pt]
        arrays = _read(f.path, f.tree, [*jagged, s.jet_pt, s.jet_eta, s.jet_phi, s.jet_energy, *self.labels], start, stop)
        counts = _counts(f.path, arrays, jagged, start)
        jet = {k: np.asarray(arrays[getattr(s, k)], dtype=np.float64) for k in ("jet_pt", "jet_eta", "jet_phi", "jet_energy")}
        # The jet axis repeated for each constituent; the coordinate functions broadcast it over a
        # trailing axis, so constituents travel as [n, 1] columns.
        axis = {k: np.repeat(jet[k], counts) for k in ("jet_pt", "jet_eta", "jet_phi")}
        if self.mode == "four-vector":
            pt, eta, phi, _ = pxpypze_to_ptetaphim(*(_flat(arrays, b)[:, None] for b in jagged))
            etarel, phirel, ptrel = to_relative(pt, eta, phi, axis["jet_pt"], axis["jet_eta"], axis["jet_phi"])
        else:
            etarel, phirel = _flat(arrays, s.deta)[:, None], wrap_phi(_flat(arrays, s.dphi)[:, None])
            ptrel = _flat(arrays, s.pt)[:, None] / axis["jet_pt"][:, None]
        points = np.concatenate([etarel, phirel, ptrel], axis=1).astype(np.float32)
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            entry = start + int(np.repeat(np.arange(len(counts)), counts)[np.flatnonzero(bad)[0]])
            raise SourceError(f"{f.path}: non-finite constituent coordinates at entry {entry}")
        # Hardest first, as JetNet: a stable sort keeps ties in file order.
        cloud = np.repeat(np.arange(len(counts)), counts)
        points = points[np.lexsort((-points[:, 2], cloud))]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if self.labels:
            onehot = np.stack([np.asarray(arrays[b]) for b in self.labels], axis=1).astype(bool)
            label = np.where(onehot.any(axis=1), onehot.argmax(axis=1), -1).astype(np.int32)
        else:
            label = np.full(len(counts), -1, dtype=np.int32)
        fields = {
            "pt": jet["jet_pt"].astype(np.float32),
            "eta": jet["jet_eta"].astype(np.float32),
            "phi": jet["jet_phi"].astype(np.float32),
            "mass": mass_from_energy(jet["jet_pt"], jet["jet_eta"], jet["jet_energy"]).astype(np.float32),
            "num_particles": counts.astype(np.int32),
            "label": label,
        }
        return Clouds(points, offsets, fields, ("etarel", "phirel", "ptrel"))


@dataclass(frozen=True)
class RootCollectionSource:
    """NanoAOD-style per-event collections -> one cloud per event (absolute coordinates)."""

    files: tuple[RootFile, ...]
    spec: CollectionSpec
    has_counter: bool = True
    field_dtypes: dict[str, str] = field(default_factory=dict)

    name = "root-collection"
    kind = "events"
    coords = "absolute"

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], *, tree: str, spec: CollectionSpec) -> "RootCollectionSource":
        if not spec.features:
            raise SourceError("--features: give at least one feature of the collection, e.g. pt,eta,phi")
        files = _inspect_files(paths, tree, [spec.branch(x) for x in spec.features], list(spec.event_fields))
        f, t = _open_tree(files[0].path, tree)
        try:
            has_counter = spec.counter in t
            if has_counter:
                _check_type(files[0].path, t, spec.counter, jagged=False)
            dtypes = {name: str(t[name].interpretation.to_dtype.newbyteorder("=")) for name in spec.event_fields}
        finally:
            f.close()
        return cls(files, spec, has_counter, dtypes)

    def rows(self) -> list[int]:
        return [f.entries for f in self.files]

    def point_features(self) -> tuple[str, ...]:
        return self.spec.features

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        s, f = self.spec, self.files[file_index]
        branches = [s.branch(x) for x in s.features]
        arrays = _read(f.path, f.tree, [*branches, *s.event_fields, *([s.counter] if self.has_counter else [])], start, stop)
        counts = _counts(f.path, arrays, branches, start)
        if self.has_counter:
            n = np.asarray(arrays[s.counter], dtype=np.int64)
            bad = np.flatnonzero(n != counts)
            if bad.size:
                i = int(bad[0])
                raise SourceError(f"{f.path}: counter {s.counter!r} disagrees with {branches[0]!r} at entry {start + i} "
                                  f"({int(n[i])} vs {int(counts[i])})")
        points = np.stack([_flat(arrays, b, np.float32) for b in branches], axis=1) if counts.sum() else \
            np.zeros((0, len(branches)), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        fields = {name: np.asarray(arrays[name]).astype(self.field_dtypes[name]) for name in s.event_fields}
        return Clouds(points, offsets, fields, s.features)


def feature_unit(name: str) -> str:
    """Conventional unit of a NanoAOD-style feature name."""
    return _UNITS.get(name.lower(), "")


def spec_from_mapping(doc: dict[str, Any]) -> JetTreeSpec:
    return replace(JetTreeSpec(), **(doc.get("branches") or {}))
