"""The shared catalog: a directory on a cluster file system where a group registers its stores.

Layout::

    <catalog>/catalog.yaml                 config: allowed_roots (see pcdata.catalog.entry)
    <catalog>/entries/<name>/<version>.json one immutable entry per registered store version
    <catalog>/entries/<name>/<version>.removed  a removed entry, kept so the version is not reused

Many processes on many hosts may write one catalog at once, with no lock server. What makes
that safe is that every entry is its own file, created exactly once:

* an entry is written to a hidden temporary file in its name's directory, given its mode,
  fsynced, then published with ``os.link(temp, "<version>.json")``. ``link`` is atomic and fails
  when the name exists, on local file systems and on NFS, Lustre, GPFS and CephFS alike, so two
  writers can never both get a version, and a reader sees a complete file or none;
* a writer that loses the race for a version takes the next one (when the version was not given
  explicitly); nothing is ever rewritten in place, so no entry is lost or torn.

Permissions: directories the catalog creates get ``0o2770`` (group-writable so every member can
register; setgid so new files take the catalog's group rather than each user's primary group);
entries and the config get ``0o640``. Entries are group-readable, which is the point of the
catalog, and closed to others because they record paths, user and host names of the group's
cluster. They are not group-writable: an entry is never edited, and whether a member may
*remove* one is governed by the directory, not by the file. Modes are set with ``fchmod``/``chmod``
so they do not depend on anybody's umask.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import getpass
import json
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import (
    CatalogError,
    CatalogFormatError,
    CatalogNotFoundError,
    EntryExistsError,
    EntryMismatchError,
    EntryNotFoundError,
    InvalidReferenceError,
    PcdataError,
    StoreNotAllowedError,
)
from .._io import fsync_dir
from ..store.metadata import read_root
from ..store.reader import Store, open_store
from .entry import NAME_RE, REF_RE, CatalogConfig, CatalogEntry, check_name, parse_ref

__all__ = [
    "CATALOG_ENV",
    "DIR_MODE",
    "ENTRY_MODE",
    "CatalogScan",
    "SharedCatalog",
    "VerifyReport",
    "catalog_dir",
    "init_catalog",
    "open_catalog",
    "resolve_reference",
    "open_named_store",
    "resolve_store",
]

CATALOG_ENV = "PCDATA_CATALOG"
ENTRY_MODE = 0o640
DIR_MODE = 0o2770
CONFIG_NAME = "catalog.yaml"
_VERSION_FILE = re.compile(r"^(\d+)\.(json|removed)$")
# A writer that keeps losing races moves on to the next version each time; this bound only stops
# a file system that fails links for some other reason from looping forever.
_MAX_ATTEMPTS = 1000


def catalog_dir(catalog: str | os.PathLike | None = None) -> Path:
    """The catalog directory: ``catalog`` if given, else ``$PCDATA_CATALOG``.

    Raises:
        CatalogNotFoundError: neither is set.
    """
    value = catalog if catalog is not None else os.environ.get(CATALOG_ENV)
    if not value:
        raise CatalogNotFoundError(f"no shared catalog: pass --catalog DIR or set {CATALOG_ENV}")
    return Path(os.path.abspath(value))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return str(os.getuid())


def _mkdir(path: Path) -> None:
    """Create one directory with :data:`DIR_MODE` (exactly, whatever the umask); fine if it exists."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    os.chmod(path, DIR_MODE)


@contextlib.contextmanager
def _temp_file(directory: Path, text: str) -> Iterator[Path]:
    """A complete, fsynced, hidden file with :data:`ENTRY_MODE` in ``directory``; removed on exit."""
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, ENTRY_MODE)
    try:
        try:
            os.fchmod(fd, ENTRY_MODE)  # open's mode went through the umask
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _publish(tmp: Path, final: Path) -> bool:
    """Give the complete file ``tmp`` the name ``final`` unless that name exists; True if it did."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        # Over NFS a link whose reply was lost is retried by the client and then fails with
        # EEXIST although it worked; the link count of our own file tells (see open(2), O_EXCL).
        return os.stat(tmp).st_nlink == 2
    return True


@dataclass(frozen=True)
class CatalogScan:
    """What a scan of the catalog found.

    Attributes:
        entries: valid entries, sorted by name then version.
        problems: one line per entry file that was skipped, naming the file and the reason.
    """

    entries: tuple[CatalogEntry, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`SharedCatalog.verify`: empty ``problems`` means the store is intact."""

    entry: CatalogEntry
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.entry.name, "version": self.entry.version, "path": self.entry.path,
                "fragments": len(self.entry.fragments), "ok": self.ok, "problems": list(self.problems)}


class SharedCatalog:
    """A shared catalog directory. Create with :func:`open_catalog` or :func:`init_catalog`.

    Reading methods need ``catalog.yaml`` to exist; :meth:`add` creates it on first use.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))
        self.entries_dir = self.root / "entries"
        self.config_path = self.root / CONFIG_NAME

    def __repr__(self) -> str:
        return f"<SharedCatalog {str(self.root)!r}>"

    # -- config --------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        """Whether the directory is a shared catalog (holds ``catalog.yaml``)."""
        return self.config_path.is_file()

    def _require(self) -> None:
        if not self.exists:
            what = "no such directory" if not self.root.exists() else f"not a shared catalog (no {CONFIG_NAME})"
            raise CatalogNotFoundError(
                f"catalog {self.root}: {what}; create it with `pcdata catalog init {self.root} --allowed-root DIR`"
            )

    @property
    def config(self) -> CatalogConfig:
        """The parsed ``catalog.yaml`` (read each time: another host may have changed it)."""
        self._require()
        try:
            doc = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
            raise CatalogFormatError(f"catalog {self.config_path}: unreadable ({str(err).splitlines()[0]})") from err
        return CatalogConfig.from_dict(doc, source=str(self.config_path))

    def _write_config(self, config: CatalogConfig, *, replace: bool) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        _mkdir(self.root)
        _mkdir(self.entries_dir)
        with _temp_file(self.root, yaml.safe_dump(config.to_dict(), sort_keys=False)) as tmp:
            if replace:
                os.replace(tmp, self.config_path)
            else:
                _publish(tmp, self.config_path)  # first adds from several hosts: one config wins

    # -- reading -------------------------------------------------------------------------------
    def _name_dir(self, name: str) -> Path:
        return self.entries_dir / check_name(name)

    def _version_files(self, name: str) -> dict[int, str]:
        """``{version: "json" | "removed"}`` for every version file of ``name``."""
        try:
            names = os.listdir(self._name_dir(name))
        except FileNotFoundError:
            return {}
        out: dict[int, str] = {}
        for fname in names:
            m = _VERSION_FILE.match(fname)
            if m and out.get(int(m[1])) != "json":
                out[int(m[1])] = m[2]
        return out

    def _read(self, path: Path, name: str, version: int) -> CatalogEntry:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except OSError as err:  # e.g. a file its writer made unreadable to the group
            raise CatalogFormatError(f"catalog {path}: unreadable ({err.strerror})") from err
        except (ValueError, RecursionError) as err:  # RecursionError: brackets nested too deep
            raise CatalogFormatError(f"catalog {path}: not valid JSON ({err})") from err
        entry = CatalogEntry.from_dict(doc, source=str(path))
        if (entry.name, entry.version) != (name, version):
            raise CatalogFormatError(f"catalog {path}: holds {entry.ref}, expected {name}@{version} from its file name")
        return entry

    def scan(self, name: str | None = None) -> CatalogScan:
        """Read every entry (of ``name``, or of all names); malformed files are skipped and reported."""
        self._require()
        entries: list[CatalogEntry] = []
        problems: list[str] = []
        try:
            names = sorted(os.listdir(self.entries_dir)) if name is None else [check_name(name)]
        except FileNotFoundError:
            names = []
        for n in names:
            d = self.entries_dir / n
            if n.startswith(".") or not d.is_dir():
                continue
            files = []
            for fname in os.listdir(d):
                if fname.startswith(".") or not fname.endswith(".json"):
                    continue  # temporary files, tombstones
                m = _VERSION_FILE.match(fname)
                if m is None or not NAME_RE.match(n):
                    problems.append(f"{d / fname}: skipped, not an entry file (expected <name>/<version>.json)")
                    continue
                files.append(int(m[1]))
            for v in sorted(files):
                try:
                    entries.append(self._read(d / f"{v}.json", n, v))
                except FileNotFoundError:
                    continue  # removed meanwhile
                except PcdataError as err:
                    problems.append(f"{d / f'{v}.json'}: skipped, {_strip_source(err, d / f'{v}.json')}")
        return CatalogScan(tuple(entries), tuple(problems))

    def entries(self, name: str | None = None) -> list[CatalogEntry]:
        """Valid entries sorted by name and version (see :meth:`scan` for the skipped ones)."""
        return list(self.scan(name).entries)

    def get(self, ref: str) -> CatalogEntry:
        """The entry ``name@version``, or the latest version of ``name``.

        Raises:
            EntryNotFoundError: no such name or version (the message lists what there is).
            CatalogFormatError: that entry's file is malformed. For the latest version this is an
                error rather than a silent fall-back to an older version.
        """
        self._require()
        name, version = parse_ref(ref)
        files = self._version_files(name)
        live = sorted(v for v, kind in files.items() if kind == "json")
        if not live:
            raise EntryNotFoundError(f"catalog {self.root}: no store named {name!r}; {self._hint(name)}")
        if version is None:
            version = live[-1]
        elif files.get(version) != "json":
            state = "was removed" if files.get(version) == "removed" else "does not exist"
            raise EntryNotFoundError(f"catalog {self.root}: {name}@{version} {state}; versions: "
                                     f"{', '.join(map(str, live))}")
        try:
            return self._read(self._name_dir(name) / f"{version}.json", name, version)
        except FileNotFoundError:
            raise EntryNotFoundError(f"catalog {self.root}: {name}@{version} was removed") from None

    def _hint(self, name: str) -> str:
        try:
            names = sorted(n for n in os.listdir(self.entries_dir) if not n.startswith("."))
        except FileNotFoundError:
            names = []
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            return f"did you mean {', '.join(close)}?"
        if not names:
            return "the catalog is empty"
        return f"known: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"

    def resolve(self, ref: str) -> Path:
        """The store path of ``name`` or ``name@version`` (see :meth:`resolve_entry`)."""
        return Path(self.resolve_entry(ref).path)

    def resolve_entry(self, ref: str) -> CatalogEntry:
        """The entry ``ref`` names, checked now against what is on disk, at every resolution and
        not only when it was registered: its store must lie under the allowed roots, must not
        have been replaced by a symbolic link (entries record the real directory), and must still
        be the store registered: its root metadata holds the entry's kind, counts and fingerprint
        (an entry edited to point at another store, or a jets entry at a showers store, is refused).

        Raises:
            StoreNotAllowedError: the entry's store now lies outside the allowed roots.
            EntryMismatchError: the store is gone, is a link, or is not the one registered.
        """
        entry = self.get(ref)
        config = self.config
        where = f"catalog {self.root}: {entry.ref}"
        if not config.allows(entry.path):
            raise StoreNotAllowedError(
                f"{where} points at {entry.path} (resolving to {os.path.realpath(entry.path)}), outside the "
                f"allowed roots ({', '.join(config.allowed_roots)})")
        if os.path.islink(entry.path):
            raise EntryMismatchError(f"{where}: {entry.path} was replaced by a symbolic link (to "
                                     f"{os.readlink(entry.path)}); register the store again if that is intended")
        try:
            root = read_root(entry.path)
        except PcdataError as err:
            raise EntryMismatchError(f"{where}: {_strip_source(err, Path(entry.path))} ({entry.path})") from err
        if root is None:
            what = "no longer exists" if not os.path.exists(entry.path) else "is no longer a pcdata store"
            raise EntryMismatchError(f"{where}: {entry.path} {what}")
        meta = root.meta
        if meta.kind != entry.kind:
            raise EntryMismatchError(f"{where} is a store of {entry.kind}, but {entry.path} holds {meta.kind}")
        changed = [f"{k} {a!r} != {b!r}" for k, a, b in (
            ("num_clouds", entry.num_clouds, meta.num_clouds), ("num_points", entry.num_points, meta.num_points),
            ("fingerprint", entry.fingerprint[:19], meta.fingerprint[:19])) if a != b]
        if changed:
            raise EntryMismatchError(f"{where}: {entry.path} is not the store registered ({changed[0]}); "
                                     "register it again if it replaced the old one on purpose")
        return entry

    # -- writing -------------------------------------------------------------------------------
    def check_add(self, name: str, store: str | os.PathLike) -> None:
        """Raise now what :meth:`add` would refuse for reasons other than the store's content: a
        malformed name, or a path outside the allowed roots of an existing catalog. (An ingest
        calls this before it starts, so that hours of work do not end in a refused registration.)

        Raises:
            InvalidReferenceError: a malformed name.
            StoreNotAllowedError: the path lies outside the catalog's allowed roots.
        """
        check_name(name)
        if not self.exists:
            return  # the first add creates the config around this store
        config = self.config
        path = os.path.abspath(store)
        if not config.allows(path):
            raise StoreNotAllowedError(
                f"{path}: outside the allowed roots of catalog {self.root} ({', '.join(config.allowed_roots)}); "
                f"allow it with `pcdata catalog init {self.root} --allowed-root DIR`"
            )

    def add(self, name: str, store: str | os.PathLike, *, version: int | None = None) -> CatalogEntry:
        """Register the complete store at ``store`` as ``name`` (next free version unless given).

        Records the store's metadata and fragment checksums as they are now (reading the data
        again is :meth:`verify`'s job). Creates ``catalog.yaml`` on first use, allowing the
        store's parent directory only.

        Raises:
            InvalidReferenceError: a malformed name or a version < 1.
            StoreError: the store cannot be opened (missing, not a store, incomplete, bad metadata).
            StoreNotAllowedError: the store lies outside the catalog's allowed roots.
            EntryExistsError: ``version`` is given and taken (or was removed: versions are not reused).
        """
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise InvalidReferenceError(f"catalog version {version!r}: expected an integer >= 1")
        path = Path(os.path.abspath(store))
        if path.is_symlink():
            # The entry records the real directory, so that a link put in its place later is seen.
            path = Path(os.path.realpath(path))
        self.check_add(name, path)
        opened = open_store(path)
        meta = opened.meta
        if not self.exists:
            self._write_config(CatalogConfig((str(path.parent),)), replace=False)
            self.check_add(name, path)  # another host may have created a different config first
        _mkdir(self.entries_dir)
        directory = self._name_dir(name)
        _mkdir(directory)
        user, host, when = _user(), socket.gethostname(), _now()
        if version is not None and self._version_files(name).get(version) == "removed":
            raise EntryExistsError(f"catalog {self.root}: {name}@{version} was removed; versions are not reused")
        for _ in range(_MAX_ATTEMPTS):
            # After a lost race the listing holds the winner's file, so this moves past it.
            v = version if version is not None else max(self._version_files(name), default=0) + 1
            entry = CatalogEntry.from_store(name, v, str(path), meta, opened.fragments, user=user, host=host, when=when)
            with _temp_file(directory, json.dumps(entry.to_dict(), indent=1) + "\n") as tmp:
                if not _publish(tmp, directory / f"{v}.json"):
                    if version is not None:
                        raise EntryExistsError(f"catalog {self.root}: {name}@{version} exists")
                    continue  # another writer took v: try the next one
            fsync_dir(directory)
            return entry
        raise CatalogError(f"catalog {self.root}: could not publish an entry for {name} after {_MAX_ATTEMPTS} attempts")

    def remove(self, ref: str) -> list[str]:
        """Remove ``name@version``, or every version of ``name``; return the ``name@version`` removed.

        The store itself is not touched. The entry file becomes ``<version>.removed`` (an atomic
        rename), which keeps the record and stops the version from being handed out again.

        Raises:
            EntryNotFoundError: no such name or version.
        """
        self._require()
        name, version = parse_ref(ref)
        files = self._version_files(name)
        targets = sorted(v for v, kind in files.items() if kind == "json" and version in (None, v))
        if not targets:
            self.get(ref)  # raises the not-found error with its hints
        removed = []
        directory = self._name_dir(name)
        for v in targets:
            try:
                os.rename(directory / f"{v}.json", directory / f"{v}.removed")
            except FileNotFoundError:
                continue  # removed by someone else meanwhile
            removed.append(f"{name}@{v}")
        if not removed:
            raise EntryNotFoundError(f"catalog {self.root}: {ref} was removed meanwhile")
        fsync_dir(directory)
        return removed

    # -- integrity -----------------------------------------------------------------------------
    def verify(self, ref: str) -> VerifyReport:
        """Check the store against its entry: the committed fragments and their checksums in the
        store's metadata must equal the entry's, and re-reading the data must reproduce them."""
        entry = self.get(ref)
        try:
            store = open_store(entry.path)
        except PcdataError as err:
            return VerifyReport(entry, (f"store: {err}",))
        problems = []
        recorded = {f.id: f for f in entry.fragments}
        present = {f.id: f for f in store.fragments}
        for fid in sorted(recorded.keys() - present.keys()):
            problems.append(f"fragment {fid}: in the entry, missing from the store's metadata")
        for fid in sorted(present.keys() - recorded.keys()):
            problems.append(f"fragment {fid}: in the store's metadata, not in the entry")
        for fid in sorted(recorded.keys() & present.keys()):
            a, b = recorded[fid], present[fid]
            if (a.num_clouds, a.num_points, a.checksum) != (b.num_clouds, b.num_points, b.checksum):
                problems.append(f"fragment {fid}: metadata changed since registration "
                                f"(entry {a.checksum[:19]}, store {b.checksum[:19]})")
        problems.extend(f"{p} (data re-read)" for p in store.verify())
        return VerifyReport(entry, tuple(problems))


def _strip_source(err: Exception, path: Path) -> str:
    """The reason part of an error message that already names ``path`` (so a line names it once)."""
    msg = str(err)
    for prefix in (f"catalog {path}: ", f"{path}: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def init_catalog(catalog: str | os.PathLike | None, allowed_roots: list[str | os.PathLike]) -> SharedCatalog:
    """Create a shared catalog (or extend the allowed roots of an existing one).

    Args:
        catalog: the directory (created with parents), or None for ``$PCDATA_CATALOG``.
        allowed_roots: directories under which stores may be registered; made absolute.
            For an existing catalog they are added to those it has.
    """
    cat = SharedCatalog(catalog_dir(catalog))
    roots = [os.path.abspath(r) for r in allowed_roots]
    if cat.exists:
        roots = [*cat.config.allowed_roots, *roots]
    # Two concurrent inits of one catalog: the last replace wins (both are complete files).
    cat._write_config(CatalogConfig(tuple(dict.fromkeys(roots))), replace=True)
    return cat


def open_catalog(catalog: str | os.PathLike | None = None) -> SharedCatalog:
    """The shared catalog at ``catalog``, or at ``$PCDATA_CATALOG`` when None."""
    return SharedCatalog(catalog_dir(catalog))


def resolve_store(ref: str, *, catalog: str | os.PathLike | None = None) -> Path:
    """The store path that ``name`` or ``name@version`` (latest when no version) stands for.

    Args:
        ref: the reference, e.g. ``top30`` or ``top30@2``.
        catalog: the catalog directory (default: ``$PCDATA_CATALOG``).

    Raises:
        CatalogNotFoundError: no catalog given or set, or the directory is not a catalog.
        EntryNotFoundError: no such name or version.
    """
    return open_catalog(catalog).resolve(ref)


def resolve_reference(path: str | os.PathLike) -> str | os.PathLike:
    """A missing ``path`` that looks like ``name[@version]`` becomes the store path from
    ``$PCDATA_CATALOG``; anything else comes back unchanged."""
    if os.path.exists(path) or not os.environ.get(CATALOG_ENV) or not REF_RE.match(str(path)):
        return path
    return resolve_store(str(path))


def open_named_store(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Store:
    """:func:`pcdata.store.open_store` for the callers that accept catalog names: ``path`` is a
    store directory or a ``name[@version]`` of the shared catalog in ``$PCDATA_CATALOG``.
    This is ``pcdata.open_store``."""
    return open_store(resolve_reference(path), allow_incomplete=allow_incomplete)
