"""The shared catalog's file formats: one entry per store version, and the catalog's config.

An entry is a JSON file, ``<catalog>/entries/<name>/<version>.json``, written once and never
changed (see :mod:`pcdata.catalog.shared` for how it is published). It copies from the store's
root metadata what a colleague needs to find and trust the store without opening it: kind,
coordinates, counts, features, a statistics summary, the provenance, and the committed
fragments with their content checksums (what ``pcdata catalog verify`` compares against).

The config is ``<catalog>/catalog.yaml``::

    format: pcdata-shared-catalog
    version: 1
    allowed_roots: [/cluster/group/stores]

Both are frozen dataclasses with ``to_dict``/``from_dict``; ``from_dict`` validates and raises
:class:`~pcdata.errors.CatalogFormatError` naming the file and the field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import CatalogFormatError, InvalidReferenceError, StoreFormatError
from ..store.format import Feature, FeatureStats, FragmentInfo, Provenance, StoreMeta
from .public import _Checker

__all__ = [
    "ENTRY_FORMAT",
    "ENTRY_FORMAT_VERSION",
    "CONFIG_FORMAT",
    "CONFIG_VERSION",
    "NAME_RE",
    "REF_RE",
    "CatalogConfig",
    "CatalogEntry",
    "EntryFragment",
    "check_name",
    "parse_ref",
]

ENTRY_FORMAT = "pcdata-catalog-entry"
ENTRY_FORMAT_VERSION = 1
CONFIG_FORMAT = "pcdata-shared-catalog"
CONFIG_VERSION = 1

# A name becomes a directory of the catalog: no separators, no leading dot (so no "." or ".."),
# no "@" (it separates the version). Case is kept as given.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<version>\d+))?$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid catalog name, else raise :class:`InvalidReferenceError`."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 200:
        raise InvalidReferenceError(
            f"catalog name {name!r}: expected letters, digits, '_', '.', '-' (not starting with '.', '_' or '-')"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name@version`` into ``(name, version or None)``.

    Raises:
        InvalidReferenceError: not of that form, or version 0.
    """
    m = REF_RE.match(ref) if isinstance(ref, str) else None
    if m is None:
        raise InvalidReferenceError(f"catalog reference {ref!r}: expected NAME or NAME@VERSION (e.g. top30@2)")
    name = check_name(m["name"])
    version = None if m["version"] is None else int(m["version"])
    if version == 0:
        raise InvalidReferenceError(f"catalog reference {ref!r}: versions start at 1")
    return name, version


def _store_part(parse, obj: Any, where: str, source: str):
    # The store's own dataclasses validate their part; re-raise in the catalog's terms so the
    # message names the entry file rather than a store.
    try:
        return parse(obj, where)
    except StoreFormatError as err:
        raise CatalogFormatError(f"catalog {source}: {err}") from None


@dataclass(frozen=True)
class EntryFragment:
    """A committed fragment as the entry records it: id, counts and content checksum."""

    id: str
    num_clouds: int
    num_points: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "num_clouds": self.num_clouds, "num_points": self.num_points, "checksum": self.checksum}

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "fragment", source: str = "<dict>") -> "EntryFragment":
        c = _Checker(source)
        d = c.mapping(obj, where, {"id", "num_clouds", "num_points", "checksum"}, set())
        return cls(c.string(d["id"], f"{where}.id"), c.integer(d["num_clouds"], f"{where}.num_clouds"),
                   c.integer(d["num_points"], f"{where}.num_points"), c.string(d["checksum"], f"{where}.checksum"))


@dataclass(frozen=True)
class CatalogEntry:
    """One registered version of a store.

    Attributes:
        name: the catalog name (``top30``).
        version: 1, 2, ... per name; never reused, even after a removal.
        path: the store's absolute path.
        kind, coords: as in the store (``jets``, ``relative-hadronic``).
        num_clouds, num_points: totals over the committed fragments.
        point_features, cloud_features: names, units, dtypes, descriptions.
        stats: per-feature count, mean, std, min, max (the store's normalisation statistics).
        provenance: the store's provenance (source files with sha256, command, tool version,
            user, host, creation time).
        fragments: the committed fragments with their content checksums.
        fingerprint: the store's fingerprint of inputs and ingest options.
        registered_by, registered_host, registered_at: who registered it, where, when (UTC, ISO 8601).
    """

    name: str
    version: int
    path: str
    kind: str
    coords: str
    num_clouds: int
    num_points: int
    point_features: tuple[Feature, ...]
    cloud_features: tuple[Feature, ...]
    stats: dict[str, FeatureStats] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    fragments: tuple[EntryFragment, ...] = ()
    fingerprint: str = ""
    registered_by: str = ""
    registered_host: str = ""
    registered_at: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise CatalogFormatError(f"catalog entry {self.name}: version must be an integer >= 1, found {self.version!r}")
        if not os.path.isabs(self.path):
            raise CatalogFormatError(f"catalog entry {self.name}@{self.version}: path must be absolute, found {self.path!r}")

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_store(cls, name: str, version: int, path: str, meta: StoreMeta, fragments: Sequence[FragmentInfo], *,
                   user: str, host: str, when: str) -> "CatalogEntry":
        """The entry of a store with root metadata ``meta`` and ``fragments`` at absolute ``path``."""
        return cls(
            name=name, version=version, path=path, kind=meta.kind, coords=meta.coords,
            num_clouds=meta.num_clouds, num_points=meta.num_points,
            point_features=meta.point_features, cloud_features=meta.cloud_features,
            stats=dict(meta.stats), provenance=meta.provenance,
            fragments=tuple(EntryFragment(f.id, f.num_clouds, f.num_points, f.checksum) for f in fragments),
            fingerprint=meta.fingerprint, registered_by=user, registered_host=host, registered_at=when,
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry file's document; ``from_dict(to_dict())`` round-trips."""
        return {
            "format": ENTRY_FORMAT,
            "format_version": ENTRY_FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "path": self.path,
            "kind": self.kind,
            "coords": self.coords,
            "num_clouds": self.num_clouds,
            "num_points": self.num_points,
            "point_features": [f.to_dict() for f in self.point_features],
            "cloud_features": [f.to_dict() for f in self.cloud_features],
            "stats": {k: s.to_dict() for k, s in self.stats.items()},
            "provenance": self.provenance.to_dict(),
            "fingerprint": self.fingerprint,
            "registered": {"user": self.registered_by, "host": self.registered_host, "time": self.registered_at},
            "fragments": [f.to_dict() for f in self.fragments],
        }

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "<dict>") -> "CatalogEntry":
        """Validate and build from an entry document; errors name ``source`` and the field."""
        c = _Checker(source)
        d = c.mapping(obj, "top level", {"format", "format_version", "name", "version", "path", "kind", "coords",
                                         "num_clouds", "num_points", "point_features", "cloud_features", "fragments"},
                      {"stats", "provenance", "fingerprint", "registered"})
        c.header(d, ENTRY_FORMAT, ENTRY_FORMAT_VERSION, version_key="format_version")

        def items(key: str, kind: type) -> Any:
            value = d.get(key, kind())
            if not isinstance(value, kind):
                raise c.fail(key, f"expected a {'list' if kind is list else 'mapping'}, found {type(value).__name__}")
            return value

        registered = c.mapping(items("registered", dict), "registered", set(), {"user", "host", "time"})
        try:
            return cls(
                name=c.string(d["name"], "name"),
                version=c.integer(d["version"], "version", minimum=1),
                path=c.string(d["path"], "path"),
                kind=c.string(d["kind"], "kind"),
                coords=c.string(d["coords"], "coords"),
                num_clouds=c.integer(d["num_clouds"], "num_clouds"),
                num_points=c.integer(d["num_points"], "num_points"),
                point_features=tuple(_store_part(Feature.from_dict, f, f"point_features[{i}]", source)
                                     for i, f in enumerate(items("point_features", list))),
                cloud_features=tuple(_store_part(Feature.from_dict, f, f"cloud_features[{i}]", source)
                                     for i, f in enumerate(items("cloud_features", list))),
                stats={str(k): _store_part(FeatureStats.from_dict, v, f"stats.{k}", source)
                       for k, v in items("stats", dict).items()},
                provenance=_store_part(Provenance.from_dict, items("provenance", dict), "provenance", source)
                if "provenance" in d else Provenance(),
                fragments=tuple(EntryFragment.from_dict(f, where=f"fragments[{i}]", source=source)
                                for i, f in enumerate(items("fragments", list))),
                fingerprint=str(d.get("fingerprint", "")),
                registered_by=str(registered.get("user", "")),
                registered_host=str(registered.get("host", "")),
                registered_at=str(registered.get("time", "")),
            )
        except (CatalogFormatError, InvalidReferenceError) as err:
            msg = str(err)
            raise CatalogFormatError(msg if msg.startswith(f"catalog {source}") else f"catalog {source}: {msg}") from None


@dataclass(frozen=True)
class CatalogConfig:
    """The catalog's settings (``catalog.yaml``).

    Attributes:
        allowed_roots: absolute directories; only stores under one of them can be registered,
            so a typo or a scratch directory that will be purged does not end up in the catalog.
    """

    allowed_roots: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.allowed_roots:
            raise CatalogFormatError("catalog config: allowed_roots must list at least one directory")
        for root in self.allowed_roots:
            if not os.path.isabs(root):
                raise CatalogFormatError(f"catalog config: allowed root {root!r} is not an absolute path")

    def allows(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` lies under an allowed root, symbolic links resolved on both sides
        (a link inside a root that points elsewhere does not get through)."""
        real = os.path.realpath(path)
        for root in self.allowed_roots:
            r = os.path.realpath(root)
            if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "allowed_roots": list(self.allowed_roots)}

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "<dict>") -> "CatalogConfig":
        """Validate and build from the parsed ``catalog.yaml``."""
        c = _Checker(source)
        d = c.mapping(obj, "top level", {"format", "version", "allowed_roots"}, set())
        c.header(d, CONFIG_FORMAT, CONFIG_VERSION)
        roots = d["allowed_roots"]
        if not isinstance(roots, list) or not roots:
            raise c.fail("allowed_roots", f"expected a non-empty list of absolute paths, found {roots!r}")
        for i, r in enumerate(roots):
            if not os.path.isabs(c.string(r, f"allowed_roots[{i}]")):
                raise c.fail(f"allowed_roots[{i}]", f"expected an absolute path, found {r!r}")
        return cls(tuple(roots))
