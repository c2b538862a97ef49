"""The shipped catalog of public datasets: JetNet and CaloChallenge files on Zenodo.

The catalog is a plain YAML file, ``catalogs/public.yaml`` at the top of the repository, read
into frozen dataclasses and validated on every load: a malformed catalog raises
:class:`~pcdata.errors.CatalogFormatError` naming the file and the field
(``datasets[3].files[0].md5``).

Where the file is looked for, first hit wins:

1. ``catalogs/public.yaml`` beside the ``pcdata`` package (a source tree or an editable install);
2. ``<prefix>/share/pcdata/catalogs/public.yaml`` (a wheel install, where pyproject's
   ``[tool.setuptools.data-files]`` puts it).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, get_args

import yaml

from ..errors import CatalogFormatError, CatalogNotFoundError, DatasetNotFoundError

__all__ = [
    "CATALOG_FORMAT",
    "CATALOG_VERSION",
    "GEOMETRIES",
    "PublicCatalog",
    "PublicDataset",
    "PublicFile",
    "default_catalog_path",
    "get_dataset",
    "load_public_catalog",
]

CATALOG_FORMAT = "pcdata-public-catalog"
CATALOG_VERSION = 1

Kind = Literal["jets", "showers"]
Layout = Literal["jetnet-hdf5", "calochallenge-hdf5"]
Geometry = Literal["ds1-photons", "ds1-pions", "ds2", "ds3"]
GEOMETRIES: tuple[str, ...] = get_args(Geometry)

# Which layout each kind of data comes in; a mismatch is a typo in the catalog.
_LAYOUT_OF_KIND: dict[str, str] = {"jets": "jetnet-hdf5", "showers": "calochallenge-hdf5"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*:[a-z0-9][a-z0-9_.-]*$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
# A file name is joined onto the download directory: no separators, no "..", no hidden files.
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


class _Checker:
    """Reads fields out of plain dicts and raises one-line errors that name file and field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> CatalogFormatError:
        return CatalogFormatError(f"catalog {self.source}: {where}: {message}")

    def mapping(self, obj: Any, where: str, required: set[str], optional: set[str]) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.fail(where, f"expected a mapping, found {type(obj).__name__}")
        missing = sorted(required - obj.keys())
        if missing:
            raise self.fail(where, f"missing field {missing[0]!r}")
        # Unknown keys are errors so that a misspelt "md5s" cannot silently switch a check off.
        unknown = sorted(set(obj) - required - optional, key=str)
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", "unknown field")
        return obj

    def header(self, d: Mapping[str, Any], fmt: str, version: int, version_key: str = "version") -> None:
        """The document's format name and version must be the ones this pcdata reads."""
        if d["format"] != fmt:
            raise self.fail("format", f"expected {fmt!r}, found {d['format']!r}")
        if d[version_key] != version:
            raise self.fail(version_key, f"this pcdata reads version {version}, found {d[version_key]!r}")

    def string(self, obj: Any, where: str, pattern: re.Pattern | None = None, expected: str = "") -> str:
        if not isinstance(obj, str) or not obj.strip():
            raise self.fail(where, f"expected a non-empty string, found {obj!r}")
        if pattern is not None and not pattern.match(obj):
            raise self.fail(where, f"expected {expected}, found {obj!r}")
        return obj

    def integer(self, obj: Any, where: str, *, minimum: int = 0, nullable: bool = False) -> int | None:
        if obj is None and nullable:
            return None
        # bool is an int subclass; "yes" read as True must not pass for a size.
        if isinstance(obj, bool) or not isinstance(obj, int) or obj < minimum:
            raise self.fail(where, f"expected an integer >= {minimum}{' or null' if nullable else ''}, found {obj!r}")
        return obj

    def choice(self, obj: Any, where: str, choices: tuple[str, ...]) -> str:
        if obj not in choices:
            raise self.fail(where, f"expected one of {', '.join(choices)}, found {obj!r}")
        return obj


@dataclass(frozen=True)
class PublicFile:
    """One downloadable file of a public dataset.

    Attributes:
        name: bare file name, also the name it gets on disk (``t.hdf5``).
        record: Zenodo record id the file belongs to.
        url: where to fetch it from when no mirror is set.
        size: size in bytes, or None where it is not published in the catalog.
        md5: lower-case hex MD5, or None where it is not published in the catalog.
    """

    name: str
    record: int
    url: str
    size: int | None = None
    md5: str | None = None

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "file", source: str = "<dict>") -> "PublicFile":
        """Validate and build from a plain dict (as read from YAML or JSON)."""
        c = _Checker(source)
        d = c.mapping(obj, where, {"name", "record", "url"}, {"size", "md5"})
        url = c.string(d["url"], f"{where}.url")
        if not url.startswith(("https://", "http://")):
            raise c.fail(f"{where}.url", f"expected an http(s) URL, found {url!r}")
        md5 = d.get("md5")
        if md5 is not None:
            md5 = c.string(md5, f"{where}.md5", _MD5_RE, "32 lower-case hex digits")
        return cls(
            name=c.string(d["name"], f"{where}.name", _FILE_NAME_RE, "a bare file name"),
            record=c.integer(d["record"], f"{where}.record", minimum=1),
            url=url,
            size=c.integer(d.get("size"), f"{where}.size", nullable=True),
            md5=md5,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the catalog's field order; ``from_dict(to_dict())`` round-trips."""
        return {"name": self.name, "record": self.record, "url": self.url, "size": self.size, "md5": self.md5}


@dataclass(frozen=True)
class PublicDataset:
    """A public dataset: its files and how to ingest them.

    Attributes:
        name: catalog name, ``<family>:<member>`` (``jetnet:t150``, ``calochallenge:ds2``).
        description: one line for people.
        kind: ``jets`` or ``showers``.
        layout: the file layout (``jetnet-hdf5`` or ``calochallenge-hdf5``).
        files: the files, in the order the ingest command takes them.
        ingest: the exact ``pcdata ingest ...`` command, run in the download directory.
        geometry: for showers, the calorimeter geometry name (``ds1-photons``, ``ds1-pions``, ``ds2``,
            ``ds3``); None for jets.
        num_particles: for jets, the particles kept per jet (30 or 150); None for showers.
        num_clouds: jets or showers over all files, where published; else None.
    """

    name: str
    description: str
    kind: Kind
    layout: Layout
    files: tuple[PublicFile, ...]
    ingest: str
    geometry: Geometry | None = None
    num_particles: int | None = None
    num_clouds: int | None = None

    @property
    def total_size(self) -> int | None:
        """Bytes over all files, or None when any file's size is not published."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]

    @property
    def records(self) -> tuple[int, ...]:
        """The distinct Zenodo records the files come from, in file order."""
        return tuple(dict.fromkeys(f.record for f in self.files))

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "dataset", source: str = "<dict>") -> "PublicDataset":
        """Validate and build from a plain dict (as read from YAML or JSON)."""
        c = _Checker(source)
        d = c.mapping(
            obj, where,
            {"name", "description", "kind", "layout", "files", "ingest"},
            {"geometry", "num_particles", "num_clouds"},
        )
        name = c.string(d["name"], f"{where}.name", _NAME_RE, "a name like 'jetnet:t' or 'calochallenge:ds2'")
        kind = c.choice(d["kind"], f"{where}.kind", get_args(Kind))
        layout = c.choice(d["layout"], f"{where}.layout", get_args(Layout))
        if layout != _LAYOUT_OF_KIND[kind]:
            raise c.fail(f"{where}.layout", f"{kind} come in {_LAYOUT_OF_KIND[kind]}, found {layout!r}")
        geometry = d.get("geometry")
        num_particles = d.get("num_particles")
        if kind == "showers":
            geometry = c.choice(geometry, f"{where}.geometry", GEOMETRIES)
            if num_particles is not None:
                raise c.fail(f"{where}.num_particles", "only jets have num_particles")
        else:
            if geometry is not None:
                raise c.fail(f"{where}.geometry", "only showers have a geometry")
            num_particles = c.integer(num_particles, f"{where}.num_particles", minimum=1)
        files_obj = d["files"]
        if not isinstance(files_obj, list) or not files_obj:
            raise c.fail(f"{where}.files", f"expected a non-empty list, found {files_obj!r}")
        files = tuple(
            PublicFile.from_dict(f, where=f"{where}.files[{i}]", source=source) for i, f in enumerate(files_obj)
        )
        seen: set[str] = set()
        for i, f in enumerate(files):
            if f.name in seen:
                raise c.fail(f"{where}.files[{i}].name", f"file {f.name!r} is listed twice")
            seen.add(f.name)
        ingest = c.string(d["ingest"], f"{where}.ingest")
        if not ingest.startswith("pcdata ingest "):
            raise c.fail(f"{where}.ingest", f"expected a 'pcdata ingest ...' command, found {ingest!r}")
        return cls(
            name=name,
            description=c.string(d["description"], f"{where}.description"),
            kind=kind,  # type: ignore[arg-type]
            layout=layout,  # type: ignore[arg-type]
            files=files,
            ingest=ingest,
            geometry=geometry,  # type: ignore[arg-type]
            num_particles=num_particles,
            num_clouds=c.integer(d.get("num_clouds"), f"{where}.num_clouds", minimum=1, nullable=True),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the catalog's field order; kind-specific fields only where they apply."""
        d: dict[str, Any] = {"name": self.name, "description": self.description, "kind": self.kind, "layout": self.layout}
        if self.kind == "showers":
            d["geometry"] = self.geometry
        else:
            d["num_particles"] = self.num_particles
        d["num_clouds"] = self.num_clouds
        d["files"] = [f.to_dict() for f in self.files]
        d["ingest"] = self.ingest
        return d


@dataclass(frozen=True)
class PublicCatalog:
    """All datasets of one catalog file.

    Attributes:
        datasets: the datasets in file order; names are unique.
        source: where the catalog was read from (for messages), ``<dict>`` when built in memory.
    """

    datasets: tuple[PublicDataset, ...]
    source: str = "<dict>"
    _by_name: dict[str, PublicDataset] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the lookup table is derived once, here, rather than kept in step by callers.
        object.__setattr__(self, "_by_name", {d.name: d for d in self.datasets})

    @property
    def names(self) -> tuple[str, ...]:
        """Dataset names in file order."""
        return tuple(d.name for d in self.datasets)

    def get(self, name: str) -> PublicDataset:
        """The dataset called ``name``.

        Raises:
            DatasetNotFoundError: no such name; the message lists the closest names.
        """
        try:
            return self._by_name[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.names)}"
        raise DatasetNotFoundError(f"no dataset {name!r} in catalog {self.source}; {hint}") from None

    def __iter__(self):
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "<dict>") -> "PublicCatalog":
        """Validate and build from the parsed catalog document."""
        c = _Checker(source)
        d = c.mapping(obj, "top level", {"format", "version", "datasets"}, set())
        c.header(d, CATALOG_FORMAT, CATALOG_VERSION)
        items = d["datasets"]
        if not isinstance(items, list):
            raise c.fail("datasets", f"expected a list, found {type(items).__name__}")
        datasets = tuple(PublicDataset.from_dict(x, where=f"datasets[{i}]", source=source) for i, x in enumerate(items))
        seen: set[str] = set()
        for i, ds in enumerate(datasets):
            if ds.name in seen:
                raise c.fail(f"datasets[{i}].name", f"dataset {ds.name!r} is listed twice")
            seen.add(ds.name)
        return cls(datasets=datasets, source=source)

    def to_dict(self) -> dict[str, Any]:
        """The catalog document; ``from_dict(to_dict())`` round-trips."""
        return {"format": CATALOG_FORMAT, "version": CATALOG_VERSION, "datasets": [d.to_dict() for d in self.datasets]}


def _candidate_paths() -> list[Path]:
    here = Path(__file__).resolve()
    # pcdata/catalog/public.py -> the repository root is three levels up.
    candidates = [here.parents[2] / "catalogs" / "public.yaml"]
    for prefix in (sysconfig.get_path("data"), sys.prefix):
        candidates.append(Path(prefix) / "share" / "pcdata" / "catalogs" / "public.yaml")
    return list(dict.fromkeys(candidates))


def default_catalog_path() -> Path:
    """Where the shipped ``public.yaml`` is (see the module docstring for the search order).

    Raises:
        CatalogNotFoundError: the file is in none of the places looked at.
    """
    candidates = _candidate_paths()
    for path in candidates:
        if path.is_file():
            return path
    raise CatalogNotFoundError(
        f"shipped catalog public.yaml not found (looked in {', '.join(str(p) for p in candidates)}); "
        "reinstall pcdata or pass a catalog path"
    )


def load_public_catalog(path: str | os.PathLike | None = None) -> PublicCatalog:
    """Read and validate a public catalog file.

    Args:
        path: a catalog YAML (or JSON) file; default: the shipped ``catalogs/public.yaml``.

    Raises:
        CatalogNotFoundError: the file does not exist.
        CatalogFormatError: it is not YAML, or a field is missing, unknown or invalid; the message
            names the file and the field.
    """
    file = Path(path) if path is not None else default_catalog_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogNotFoundError(f"catalog {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogFormatError(f"catalog {file}: cannot be read: {err}") from err
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as err:  # RecursionError: brackets nested too deep
        # YAML's own message spans several lines; keep its first and the position.
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CatalogFormatError(f"catalog {file}: not valid YAML{at}: {problem}") from err
    return PublicCatalog.from_dict(doc, source=str(file))


def get_dataset(name: str, catalog: PublicCatalog | str | os.PathLike | None = None) -> PublicDataset:
    """Look a dataset up by name.

    Args:
        name: the catalog name, e.g. ``jetnet:t`` or ``calochallenge:ds2``.
        catalog: a loaded catalog, a catalog file, or None for the shipped one.

    Raises:
        DatasetNotFoundError: no such name; the message lists the closest names.
    """
    if not isinstance(catalog, PublicCatalog):
        catalog = load_public_catalog(catalog)
    return catalog.get(name)
