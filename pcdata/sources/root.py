"""ROOT trees as point-cloud sources, read with uproot in entry ranges.

A "tree" is a TTree or an RNTuple (ROOT 7's columnar format, where NanoAOD is going): both are
read behind one small interface (:class:`_Table`), their jagged columns as ``float[n]``,
``std::vector<T>`` or ``ROOT::VecOps::RVec<T>`` alike. Two layouts groups actually hold:

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
from ._remote import input_size, is_url, read_error, remote_errors
from ..geometry.jets import mass_from_energy, pxpypze_to_ptetaphim, to_relative, wrap_phi

__all__ = ["JetTreeSpec", "CollectionSpec", "RootFile", "RootJetSource", "RootCollectionSource", "load_mapping", "entries_per_step"]

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


class _Table:
    """What the sources need of a TTree or an RNTuple, so both layouts read either alike: entries,
    top-level names with their C++ type and awkward form, entry ranges read as awkward arrays and
    a step size. ``noun`` and ``member`` word the messages ('tree'/'branch', 'RNTuple'/'field')."""

    noun = member = ""

    def __init__(self, obj, path: str):
        self.obj, self.path = obj, path

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def entries(self) -> int:
        return int(self.obj.num_entries)

    def names(self) -> list[str]:
        raise NotImplementedError

    def typename(self, name: str) -> str:
        return self.obj[name].typename

    def form(self, name: str):
        """The awkward form of one entry of ``name``, None where uproot cannot interpret it."""
        raise NotImplementedError

    def arrays(self, names: Sequence[str], start: int, stop: int):
        raise NotImplementedError

    def entries_for(self, step: str, names: Sequence[str]) -> int:
        raise NotImplementedError


class _TTree(_Table):
    noun, member = "tree", "branch"

    def names(self) -> list[str]:
        return list(self.obj.keys())

    def form(self, name: str):
        try:
            return self.obj[name].interpretation.awkward_form(self.obj.file)
        except Exception:  # uproot raises when it cannot interpret a branch at all
            return None

    def arrays(self, names, start, stop):
        return self.obj.arrays(list(names), entry_start=start, entry_stop=stop, library="ak")

    def entries_for(self, step, names):
        return int(self.obj.num_entries_for(step, list(names)))


class _RNTuple(_Table):
    noun, member = "RNTuple", "field"

    def names(self) -> list[str]:
        # Top level only: a collection's item subfields ('_0') are not columns of their own here.
        return list(self.obj.keys(recursive=False))

    def form(self, name: str):
        try:
            return self.obj[name].to_akform()[0].contents[0]
        except Exception:  # a field type uproot does not read
            return None

    def arrays(self, names, start, stop):
        wanted = set(names)
        return self.obj.arrays(filter_field=lambda f: f.name in wanted, entry_start=start, entry_stop=stop, library="ak")

    def entries_for(self, step, names):
        """About ``step`` of the fields' data per read, in whole clusters (at least one): uproot
        decompresses an RNTuple cluster by cluster, so a range that cuts one decompresses it for
        both neighbours. With clusters of equal size (as uproot and, roughly, ROOT write them)
        fragments then align. (uproot 5.7 also reads the cluster that starts at a range's stop:
        a fragment of k clusters decompresses k + 1.)"""
        wanted = set(names)
        est = int(self.obj.num_entries_for(step, filter_field=lambda f: f.name in wanted) or 1)
        sizes = [int(c.num_entries) for c in self.obj.cluster_summaries]
        cluster = max(sizes, default=0)
        return max(1, est // cluster) * cluster if cluster else max(1, est)


def _open_tree(path: str, tree: str) -> tuple[Any, _Table]:
    """Open ``path`` and its TTree or RNTuple ``tree``; a SourceError naming the file otherwise."""
    import uproot
    from uproot.behaviors.RNTuple import RNTuple
    from uproot.behaviors.TTree import TTree

    if is_url(path):
        # Only the baskets asked for are fetched: HTTP ranges through fsspec, XRootD through
        # uproot's own XRootD source (its fsspec-xrootd route fails on numpy offsets, uproot 5.7).
        xrootd = path.lower().startswith(("root://", "xroot://"))
        with remote_errors(path):
            f = uproot.open(path, **({"handler": uproot.source.xrootd.XRootDSource} if xrootd else {}))
        size = None
    else:
        p = Path(path)
        if not p.exists():
            raise SourceError(f"{path}: no such file")
        if p.stat().st_size == 0:
            raise SourceError(f"{path}: empty file (0 bytes)")
        try:
            f = uproot.open(path)
        except Exception as err:  # uproot raises ValueError/OSError/DeserializationError for non-ROOT input
            raise SourceError(f"{path}: not a readable ROOT file ({type(err).__name__}: {str(err).splitlines()[0]})") from err
        size = p.stat().st_size
    end = getattr(f.file, "fEND", None)
    if isinstance(end, int) and size is not None and size < end:  # a URL's size is checked by _inspect_files
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
    if isinstance(t, TTree):
        return f, _TTree(t, path)
    if not isinstance(t, RNTuple):
        f.close()
        raise SourceError(f"{path}: {tree!r} is a {getattr(t, 'classname', type(t).__name__)}, not a TTree or an RNTuple")
    table = _RNTuple(t, path)
    try:  # an RNTuple reads its header and footer (schema, clusters) lazily: a damaged one fails here
        table.names(), t.cluster_summaries
    except Exception as err:
        f.close()
        raise SourceError(f"{path}: damaged RNTuple {tree!r}, its header or footer cannot be read "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    return f, table


def _missing(table: _Table, name: str) -> SourceError:
    near = difflib.get_close_matches(name, table.names(), n=3)
    hint = f"; did you mean {', '.join(near)}" if near else ""
    return SourceError(f"{table.path}: {table.noun} {table.name!r} has no {table.member} {name!r}{hint}")


def _primitive(form, kinds: str):
    """The numpy dtype of a NumpyForm of one value per element whose kind is in ``kinds``, else None."""
    import awkward as ak

    if not isinstance(form, ak.forms.NumpyForm) or form.inner_shape != () or form.parameters.get("__array__"):
        return None
    dtype = np.dtype(form.primitive)
    return dtype if dtype.kind in kinds else None


def _check_type(table: _Table, name: str, jagged: bool) -> np.dtype:
    """Raise unless ``name`` holds numbers, jagged (one list per entry: ``float[n]``,
    ``std::vector<T>``, ``ROOT::VecOps::RVec<T>``) or flat as asked; return the number type."""
    import awkward as ak

    if name not in table.names():
        raise _missing(table, name)
    form = table.form(name)
    if jagged:
        is_list = isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm)) and not form.parameters.get("__array__")
        dtype = _primitive(form.content, "fiu") if is_list else None
        expected = f"a jagged numeric {table.member} (one list of numbers per entry)"
    else:
        dtype = _primitive(form, "fiub")
        expected = f"a numeric {table.member} with one value per entry"
    if dtype is None:
        raise SourceError(f"{table.path}: {table.member} {name!r} has type {table.typename(name)!r}, expected {expected}")
    return dtype


def _read(path: str, tree: str, names: Sequence[str], start: int, stop: int):
    try:
        f, t = _open_tree(path, tree)
    except SourceError as err:  # a server gone away is not bad input
        read_error(path, err, f"entries {start}:{stop} of {tree!r}")
    try:
        return t.arrays(names, start, stop)
    except Exception as err:  # damaged baskets or pages surface as several uproot/zlib error types
        read_error(path, err, f"entries {start}:{stop} of {tree!r}")
    finally:
        f.close()


def entries_per_step(path: str, tree: str, names: Sequence[str], step: str) -> int:
    """Entries of ``tree`` in ``path`` that hold about ``step`` (e.g. ``"64 MB"``) of the columns
    ``names``: uproot's estimate for a TTree, rounded to whole clusters for an RNTuple."""
    f, t = _open_tree(path, tree)
    try:
        return max(1, int(t.entries_for(step, names)))
    except SourceError:
        raise
    except Exception as err:  # basket or page headers that cannot be read: a damaged file
        raise SourceError(f"{path}: damaged ROOT file, its baskets cannot be read ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})") from err
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
        size = input_size(p) if is_url(p) else None  # a URL is stat-ed (and checked for ranges) first
        f, t = _open_tree(p, tree)
        try:
            for b in jagged:
                _check_type(t, b, jagged=True)
            for b in flat:
                _check_type(t, b, jagged=False)
            end = getattr(f.file, "fEND", None)
            if size is not None and isinstance(end, int) and size < end:
                raise SourceError(f"{p}: truncated ROOT file ({size} bytes, its header says {end})")
            out.append(RootFile(p, tree, t.entries, size if size is not None else os.path.getsize(p)))
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
            keys = set(t.names())
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
            raise SourceError("features: give at least one feature of the collection, e.g. pt,eta,phi")
        files = _inspect_files(paths, tree, [spec.branch(x) for x in spec.features], list(spec.event_fields))
        f, t = _open_tree(files[0].path, tree)
        try:
            has_counter = spec.counter in t.names()
            if has_counter:
                _check_type(t, spec.counter, jagged=False)
            dtypes = {name: str(_check_type(t, name, jagged=False)) for name in spec.event_fields}
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
