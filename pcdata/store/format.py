"""The store's root metadata and manifests, format version 2, as frozen dataclasses.

The metadata lives in the root group's ``zarr.json`` under ``attributes["pcdata"]`` and is the
commit point of the store: it is replaced atomically and names the manifests that list the
committed fragments (a fragment exists for readers only once a named manifest lists it). Every
class has ``to_dict``/``from_dict``; ``from_dict`` validates and raises
:class:`~pcdata.errors.StoreFormatError` naming the store and the field. Format 1 roots (fragment
list inline) are parsed too, for reading old stores. See ``README.md`` beside this file for the
on-disk layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, get_args

from ..errors import StoreFormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Kind",
    "Status",
    "Feature",
    "Moments",
    "FeatureStats",
    "SourceFile",
    "Provenance",
    "SplitSpec",
    "FragmentInfo",
    "ChunkSpec",
    "ManifestPart",
    "Manifests",
    "StoreMeta",
    "fragment_id",
    "fragment_index",
]

FORMAT_NAME = "pcdata.pointcloud"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_FORMAT = "pcdata.manifest"
FANOUT = 1000  # fragments per fan-out directory
CODECS = ("lz4", "zstd", "lz4hc", "blosclz", "zlib", "none")  # Blosc compressors, or raw chunks
Kind = Literal["jets", "showers", "events"]
Status = Literal["incomplete", "complete"]


def _require(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, Mapping):
        raise StoreFormatError(f"{where}: expected an object, found {type(d).__name__}")
    if key not in d:
        raise StoreFormatError(f"{where}: missing field {key!r}")
    value = d[key]
    if not isinstance(value, types) or isinstance(value, bool):  # no field of the format is a boolean
        names = "/".join(t.__name__ for t in _as_tuple(types))
        raise StoreFormatError(f"{where}: field {key!r} must be {names}, found {type(value).__name__}")
    return value


def _optional(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], default: Any, where: str) -> Any:
    """An optional field: ``default`` when absent (or null), else of ``types`` (never a boolean)."""
    return default if d.get(key) is None else _require(d, key, types, where)


def _count(d: Mapping[str, Any], key: str, where: str) -> int:
    value = _require(d, key, int, where)
    if value < 0:
        raise StoreFormatError(f"{where}: field {key!r} must be >= 0, found {value}")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _num(x: float | None) -> float | None:
    # JSON has no NaN/inf: empty statistics are stored as null.
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class Feature:
    """A named column: a point feature or a per-cloud field."""

    name: str
    unit: str = ""
    dtype: str = "float32"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "dtype": self.dtype, "description": self.description}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "feature") -> "Feature":
        import numpy as np

        name = _require(d, "name", str, where)
        dtype = _optional(d, "dtype", str, "float32", where)
        try:
            ok = np.dtype(dtype).kind in "biuf"
        except (TypeError, ValueError, SyntaxError):  # numpy parses dtype strings, SyntaxError included
            ok = False
        if not ok:
            raise StoreFormatError(f"{where}: feature {name!r} has dtype {dtype!r}, expected a numeric dtype such as float32")
        return cls(name=name, unit=_optional(d, "unit", str, "", where), dtype=dtype,
                   description=_optional(d, "description", str, "", where))


@dataclass(frozen=True)
class Moments:
    """Mergeable partial statistics of one feature (count, mean, sum of squared deviations, range).

    Merging uses Chan et al.'s pairwise formula; merging in a fixed order (fragment order) makes
    the result bit-identical however the fragments were scheduled.
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    @classmethod
    def of(cls, values) -> "Moments":
        import numpy as np

        v = np.asarray(values, dtype=np.float64)  # pragma: no mutate (numpy means are float64 for ints too)
        v = v.reshape(-1)  # pragma: no mutate (numpy reads any negative size, and None, as -1)
        if v.size == 0:
            return cls()
        mean = float(v.mean())
        return cls(count=int(v.size), mean=mean, m2=float(((v - mean) ** 2).sum()), min=float(v.min()), max=float(v.max()))

    def merge(self, other: "Moments") -> "Moments":
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / n
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return Moments(n, mean, m2, min(self.min, other.min), max(self.max, other.max))

    def to_stats(self) -> "FeatureStats":
        if self.count == 0:
            return FeatureStats(0, None, None, None, None)
        return FeatureStats(self.count, self.mean, math.sqrt(self.m2 / self.count), self.min, self.max)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2, "min": _num(self.min), "max": _num(self.max)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "moments") -> "Moments":
        count = _count(d, "count", where)
        if count == 0:
            return cls()
        return cls(count, float(_require(d, "mean", (int, float), where)), float(_require(d, "m2", (int, float), where)),
                   float(_require(d, "min", (int, float), where)), float(_require(d, "max", (int, float), where)))


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of one feature over the whole store, for normalisation (std is the population std)."""

    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": _num(self.mean), "std": _num(self.std), "min": _num(self.min), "max": _num(self.max)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "stats") -> "FeatureStats":
        count = _count(d, "count", where)
        get = lambda k: None if d.get(k) is None else float(_require(d, k, (int, float), where))  # noqa: E731
        return cls(count, get("mean"), get("std"), get("min"), get("max"))


@dataclass(frozen=True)
class SourceFile:
    """An input file of the ingest: where it was, its size and sha256."""

    path: str
    size: int
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "source") -> "SourceFile":
        return cls(_require(d, "path", str, where), _count(d, "size", where), _optional(d, "sha256", str, None, where))


@dataclass(frozen=True)
class Provenance:
    """Where the store came from: inputs, the command, the tool version, user and time."""

    sources: tuple[SourceFile, ...] = ()
    command: str = ""
    tool: str = ""
    user: str = ""
    host: str = ""
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"sources": [s.to_dict() for s in self.sources], "command": self.command, "tool": self.tool,
                "user": self.user, "host": self.host, "created": self.created}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "provenance") -> "Provenance":
        sources = _require(d, "sources", list, where)
        return cls(tuple(SourceFile.from_dict(s, f"{where}.sources[{i}]") for i, s in enumerate(sources)),
                   str(d.get("command", "")), str(d.get("tool", "")), str(d.get("user", "")),
                   str(d.get("host", "")), str(d.get("created", "")))


_SPLIT_METHODS = ("splitmix64-threshold-v1", "splitmix64-rank-v1")  # see pcdata.store.splits


@dataclass(frozen=True)
class SplitSpec:
    """Named splits: fractions in order, a seed, and the (versioned) assignment method.

    The assignment is pure integer arithmetic on the cloud index (see :mod:`pcdata.store.splits`),
    so it is the same on every machine and with every numpy version.
    """

    fractions: tuple[tuple[str, float], ...] = (("train", 0.7), ("val", 0.15), ("test", 0.15))
    seed: int = 42
    method: str = "splitmix64-threshold-v1"

    def __post_init__(self) -> None:
        if self.method not in _SPLIT_METHODS:
            raise StoreFormatError(f"splits: unknown method {self.method!r} (known: {', '.join(_SPLIT_METHODS)})")
        names = [n for n, _ in self.fractions]
        if len(set(names)) != len(names) or not names:
            raise StoreFormatError(f"splits: names must be unique and non-empty, found {names}")
        total = sum(f for _, f in self.fractions)
        off = abs(total - 1.0) > 1e-6  # pragma: no mutate (> or >= at exactly 1e-6: no promise)
        if any(f < 0 for _, f in self.fractions) or off:
            raise StoreFormatError(f"splits: fractions must be >= 0 and sum to 1, found {dict(self.fractions)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.fractions)

    def to_dict(self) -> dict[str, Any]:
        return {"fractions": dict(self.fractions), "seed": self.seed, "method": self.method}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "splits") -> "SplitSpec":
        fractions = _require(d, "fractions", dict, where)
        method = _require(d, "method", str, where)
        if method not in _SPLIT_METHODS:
            raise StoreFormatError(f"{where}: unknown split method {method!r}")
        for k in fractions:
            value = _require(fractions, k, (int, float), f"{where}.fractions")
            if not math.isfinite(value):
                raise StoreFormatError(f"{where}.fractions: {k!r} must be a finite number, found {value}")
        return cls(tuple((str(k), float(v)) for k, v in fractions.items()), _require(d, "seed", int, where), method)


def fragment_id(index: int) -> str:
    """Name of fragment ``index``: fixed width, so names sort in partition order."""
    return f"f{index:09d}"


def fragment_index(fid: str) -> int:
    """The partition number of a fragment name (format 1 names have 6 digits, format 2 nine)."""
    if not (fid.startswith("f") and fid[1:].isdigit()):
        raise StoreFormatError(f"invalid fragment id {fid!r}")
    return int(fid[1:])


@dataclass(frozen=True)
class FragmentInfo:
    """A committed fragment: its name, counts, content checksum, source range, partial stats."""

    id: str
    num_clouds: int
    num_points: int
    checksum: str
    source: dict[str, Any] = field(default_factory=dict)
    moments: dict[str, Moments] = field(default_factory=dict)
    max_points: int = -1  # points of the fragment's longest cloud (-1: not recorded)

    @property
    def index(self) -> int:
        return fragment_index(self.id)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "num_clouds": self.num_clouds, "num_points": self.num_points, "checksum": self.checksum,
                "source": dict(self.source), "moments": {k: m.to_dict() for k, m in self.moments.items()},
                "max_points": self.max_points}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "fragment") -> "FragmentInfo":
        return cls(
            id=_require(d, "id", str, where),
            num_clouds=_count(d, "num_clouds", where),
            num_points=_count(d, "num_points", where),
            checksum=_require(d, "checksum", str, where),
            source=dict(_optional(d, "source", dict, {}, where)),
            moments={k: Moments.from_dict(v, f"{where}.moments.{k}") for k, v in _optional(d, "moments", dict, {}, where).items()},
            max_points=_optional(d, "max_points", int, -1, where),
        )


@dataclass(frozen=True)
class ChunkSpec:
    """Chunking and compression of fragment arrays (the store's ``layout``).

    Attributes:
        points_rows: points per inner chunk (a chunk holds all features of those points).
        clouds: clouds per inner chunk of ``offsets`` and the cloud fields.
        cname, clevel, shuffle: the Blosc codec. lz4 with byte shuffle: measured on Pythia jets
            lz4 writes 5x and reads 2x faster than zstd-3; byte shuffle then decodes 1.6-1.8x
            faster than bit shuffle (5.7 against 3.1 GB/s on jets, 4.6 against 2.8 on showers)
            for a store 7 % larger on jets and the same on showers (float mantissas hardly
            compress; integer-valued calorimeter cells compress very well). Loaders decode every
            epoch, so decoding speed wins. ``cname="none"`` stores raw chunks: decoding is then a
            read from the page cache, for stores whose data hardly compress.
    """

    points_rows: int = 65536
    clouds: int = 65536
    cname: str = "lz4"
    clevel: int = 5
    shuffle: str = "shuffle"

    def __post_init__(self) -> None:
        if self.points_rows < 1 or self.clouds < 1:
            raise ValueError("chunk sizes must be >= 1")
        if self.cname not in CODECS:
            raise ValueError(f"compression {self.cname!r} is not one of {', '.join(CODECS)}")
        if self.shuffle not in ("noshuffle", "shuffle", "bitshuffle"):
            raise ValueError(f"shuffle {self.shuffle!r} is not one of noshuffle, shuffle, bitshuffle")
        if not 0 <= self.clevel <= 9:
            raise ValueError(f"compression level must be 0-9, got {self.clevel}")

    def to_dict(self) -> dict[str, Any]:
        return {"points_rows": self.points_rows, "clouds": self.clouds, "cname": self.cname, "clevel": self.clevel,
                "shuffle": self.shuffle, "fanout": FANOUT}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "layout") -> "ChunkSpec":
        if _optional(d, "fanout", int, FANOUT, where) != FANOUT:
            raise StoreFormatError(f"{where}: fan-out {d.get('fanout')} is not supported (this pcdata writes {FANOUT})")
        try:
            return cls(_require(d, "points_rows", int, where), _require(d, "clouds", int, where),
                       _require(d, "cname", str, where), _require(d, "clevel", int, where), _require(d, "shuffle", str, where))
        except StoreFormatError:
            raise  # already names its place
        except ValueError as err:  # a bound of ChunkSpec itself
            raise StoreFormatError(f"{where}: {err}") from None


@dataclass(frozen=True)
class ManifestPart:
    """One index manifest of a complete store: its path (relative to the store) and what it lists."""

    path: str
    fragments: int
    clouds: int
    points: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "fragments": self.fragments, "clouds": self.clouds, "points": self.points}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "manifest") -> "ManifestPart":
        return cls(_require(d, "path", str, where), _count(d, "fragments", where),
                   _count(d, "clouds", where), _count(d, "points", where))


@dataclass(frozen=True)
class Manifests:
    """What the root names: ``log`` committed log manifests while building, ``index`` parts once complete."""

    log: int = 0
    index: tuple[ManifestPart, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log} if not self.index else {"index": [p.to_dict() for p in self.index]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "manifests") -> "Manifests":
        if "index" in d:
            parts = _require(d, "index", list, where)
            return cls(0, tuple(ManifestPart.from_dict(p, f"{where}.index[{i}]") for i, p in enumerate(parts)))
        return cls(_count(d, "log", where))


@dataclass(frozen=True)
class StoreMeta:
    """Everything a reader needs to know about a store; the fragments are listed in its manifests."""

    kind: Kind
    coords: str
    point_features: tuple[Feature, ...]
    cloud_features: tuple[Feature, ...]
    status: Status = "incomplete"
    generation: str = ""
    layout: ChunkSpec = field(default_factory=ChunkSpec)
    num_fragments: int = 0
    num_clouds: int = 0
    num_points: int = 0
    expected_fragments: int = 0
    manifests: Manifests = field(default_factory=Manifests)
    stats: dict[str, FeatureStats] = field(default_factory=dict)
    splits: SplitSpec = field(default_factory=SplitSpec)
    provenance: Provenance = field(default_factory=Provenance)
    fingerprint: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in get_args(Kind):
            raise StoreFormatError(f"kind must be one of {get_args(Kind)}, found {self.kind!r}")
        if self.status not in get_args(Status):
            raise StoreFormatError(f"status must be one of {get_args(Status)}, found {self.status!r}")
        names = [f.name for f in self.cloud_features]
        if len(set(names)) != len(names):
            raise StoreFormatError(f"cloud feature names must be unique, found {names}")

    @property
    def point_feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.point_features)

    @property
    def cloud_feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.cloud_features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "kind": self.kind,
            "coords": self.coords,
            "status": self.status,
            "generation": self.generation,
            "layout": self.layout.to_dict(),
            "num_fragments": self.num_fragments,
            "num_clouds": self.num_clouds,
            "num_points": self.num_points,
            "expected_fragments": self.expected_fragments,
            "manifests": self.manifests.to_dict(),
            "point_features": [f.to_dict() for f in self.point_features],
            "cloud_features": [f.to_dict() for f in self.cloud_features],
            "stats": {k: s.to_dict() for k, s in self.stats.items()},
            "splits": self.splits.to_dict(),
            "provenance": self.provenance.to_dict(),
            "attrs": self.attrs,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "store") -> "StoreMeta":
        """Validate and parse a format 2 root; the format name and version are checked first."""
        meta, _ = parse_root(d, where)
        if meta.version != FORMAT_VERSION:
            raise StoreFormatError(f"{where}: format version {meta.version} where {FORMAT_VERSION} was expected")
        return meta


def parse_root(d: Mapping[str, Any], where: str = "store") -> tuple[StoreMeta, tuple[FragmentInfo, ...] | None]:
    """Parse root metadata of any readable version: format 2 gives ``(meta, None)``; format 1 gives
    the metadata with its counts and the fragment list it held inline."""
    fmt = _require(d, "format", str, where)
    if fmt != FORMAT_NAME:
        raise StoreFormatError(f"{where}: unknown store format {fmt!r} (expected {FORMAT_NAME!r})")
    version = _require(d, "version", int, where)
    if version not in READABLE_VERSIONS:
        raise StoreFormatError(
            f"{where}: store format version {version} is not supported (this pcdata reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    try:
        common = dict(
            kind=_require(d, "kind", str, where),
            coords=_require(d, "coords", str, where),
            status=_require(d, "status", str, where),
            point_features=tuple(Feature.from_dict(f, f"{where}.point_features") for f in _require(d, "point_features", list, where)),
            cloud_features=tuple(Feature.from_dict(f, f"{where}.cloud_features") for f in _require(d, "cloud_features", list, where)),
            expected_fragments=_optional(d, "expected_fragments", int, 0, where),
            stats={k: FeatureStats.from_dict(v, f"{where}.stats.{k}") for k, v in _optional(d, "stats", dict, {}, where).items()},
            splits=SplitSpec.from_dict(_require(d, "splits", dict, where), f"{where}.splits"),
            provenance=Provenance.from_dict(_require(d, "provenance", dict, where), f"{where}.provenance"),
            fingerprint=_optional(d, "fingerprint", str, "", where),
            attrs=dict(_optional(d, "attrs", dict, {}, where)),
            format=fmt,
            version=version,
        )
        if version == 1:
            fragments = tuple(FragmentInfo.from_dict(f, f"{where}.fragments[{i}]")
                              for i, f in enumerate(_require(d, "fragments", list, where)))
            return _meta_v1(common, fragments), fragments
        return StoreMeta(
            **common,
            generation=_require(d, "generation", str, where),
            layout=ChunkSpec.from_dict(_require(d, "layout", dict, where), f"{where}.layout"),
            num_fragments=_count(d, "num_fragments", where),
            num_clouds=_count(d, "num_clouds", where),
            num_points=_count(d, "num_points", where),
            manifests=Manifests.from_dict(_require(d, "manifests", dict, where), f"{where}.manifests"),
        ), None
    except StoreFormatError as err:
        msg = str(err)
        raise StoreFormatError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _meta_v1(common: dict[str, Any], fragments: tuple[FragmentInfo, ...]) -> StoreMeta:
    """A format 1 root as :class:`StoreMeta` (counts from its inline fragment list)."""
    return StoreMeta(**common, num_fragments=len(fragments), num_clouds=sum(f.num_clouds for f in fragments),
                     num_points=sum(f.num_points for f in fragments))
