"""Fetch the files of a catalogued dataset over HTTP, resumably, and check them.

How a file travels:

- It is written to ``<dir>/<name>.part`` and renamed onto ``<dir>/<name>`` only once its size and
  MD5 (whichever the catalog records) match, so ``<name>`` is always a complete, checked file.
- A ``.part`` left by a cut connection is kept and continued with an HTTP ``Range`` request, by the
  automatic retries of this call or by running it again. A server that ignores ``Range``
  (answers 200 instead of 206) gets a clean restart from byte 0.
- A ``.part`` is removed when it can be of no use: on a size or MD5 mismatch, and when a transfer
  breaks on a server that does not advertise ``Accept-Ranges: bytes`` (it could not be resumed).
- Where the catalog publishes no MD5 (JetNet's files), the content is checked instead before the
  rename: a readable HDF5 file with the catalog's layout (datasets and shapes: particles per jet,
  the geometry's voxels) and, for a one-file dataset, the catalog's row count. Its sha256 is
  then recorded beside it in ``<name>.sha256`` (``sha256sum`` format), so a later run finds a
  file that changed since.
- A file already at ``<dir>/<name>`` is checked and skipped; one that fails the check is left
  alone and reported, never overwritten.

Mirrors: with a base URL (the ``base_url`` argument, ``--base-url`` or the ``PCDATA_MIRROR``
environment variable, in that order) a file is fetched from ``<base_url>/<record>/<name>``,
i.e. a mirror keeps the Zenodo record ids as directory names.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from .._io import atomic_path, file_digest
from ..errors import ChecksumError, DownloadError, SourceError
from .public import PublicCatalog, PublicDataset, PublicFile, get_dataset

__all__ = ["MIRROR_ENV", "download", "file_url", "resolve_base_url"]

MIRROR_ENV = "PCDATA_MIRROR"
_BLOCK = 1 << 20
# Seconds to wait before retry n is n times this: long enough for a flaky link, short in tests.
_RETRY_DELAY_S = 1.0
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _Interrupted(Exception):
    """The body stopped short; ``resumable`` tells whether the ``.part`` is worth keeping."""

    def __init__(self, message: str, resumable: bool):
        super().__init__(message)
        self.resumable = resumable


def resolve_base_url(base_url: str | None = None) -> str | None:
    """The mirror base URL in effect: ``base_url`` if given, else ``$PCDATA_MIRROR``, else None.

    Raises:
        DownloadError: the base URL is not an http(s) URL.
    """
    base = base_url if base_url is not None else os.environ.get(MIRROR_ENV)
    if not base:
        return None
    if not base.startswith(("http://", "https://")):
        raise DownloadError(f"mirror base URL {base!r} is not an http(s) URL")
    return base.rstrip("/")


def file_url(file: PublicFile, base_url: str | None = None) -> str:
    """Where to fetch ``file`` from: its catalog URL, or ``<base_url>/<record>/<name>`` on a mirror."""
    if base_url is None:
        return file.url
    return f"{base_url.rstrip('/')}/{file.record}/{urllib.parse.quote(file.name)}"


def _mismatch(path: Path, file: PublicFile) -> str | None:
    """How ``path`` differs from the catalog's size or MD5 (``"5 bytes, the catalog says 7"``), or None."""
    if file.size is not None and (actual := path.stat().st_size) != file.size:
        return f"{actual} bytes, the catalog says {file.size}"
    if file.md5 is not None and (digest := file_digest(path, "md5")) != file.md5:
        return f"md5 {digest}, the catalog says {file.md5}"
    return None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _content_problem(path: Path, file: PublicFile, dataset: PublicDataset) -> str | None:
    """How the content of ``path`` fails the layout ``dataset`` names (for files without an MD5),
    or None. Reads the HDF5 metadata only."""
    from ..sources.calochallenge import inspect_calochallenge_file
    from ..sources.jetnet import inspect_jetnet_file, label_from_filename

    try:
        if dataset.layout == "jetnet-hdf5":
            label = label_from_filename(file.name)  # a file recording another class is not this one
            info = inspect_jetnet_file(path, label=0 if label is None else label)
            rows, what = info.n_jets, "jets"
            if info.num_particles != dataset.num_particles:
                return f"{info.num_particles} particles per jet, the catalog says {dataset.num_particles}"
        else:
            rows, what = inspect_calochallenge_file(path, dataset.geometry).n_showers, "showers"
    except SourceError as err:
        reason = str(err)
        return reason[len(f"{path}: "):] if reason.startswith(f"{path}: ") else reason
    if len(dataset.files) == 1 and dataset.num_clouds is not None and rows != dataset.num_clouds:
        return f"{rows} {what}, the catalog says {dataset.num_clouds}"
    return None


def _record_sha256(path: Path, name: str) -> None:
    digest = file_digest(path, "sha256")
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text(f"{digest}  {name}\n", encoding="utf-8")


def _check_existing(target: Path, file: PublicFile, dataset: PublicDataset) -> str:
    """Check a file already in place; return how it was checked (for the message).

    Raises:
        ChecksumError: it differs from the catalog, or (no MD5 published) from the sha256 recorded
            when it was downloaded, or its content is not the catalog's layout.
    """
    problem = _mismatch(target, file)
    if problem is None and file.md5 is None:
        sidecar = _sidecar(target)
        if sidecar.exists():
            recorded = sidecar.read_text(encoding="utf-8").split()[:1]
            digest = file_digest(target, "sha256")
            if recorded != [digest]:
                problem = f"sha256 {digest}, but {sidecar.name} recorded {(recorded or ['nothing'])[0]} at download"
            else:
                return "sha256 as recorded at download"
        else:
            problem = _content_problem(target, file, dataset)
            if problem is None:
                _record_sha256(target, file.name)  # downloaded before sha256s were recorded
                return "content checked, sha256 recorded"
    if problem is not None:
        raise ChecksumError(f"{target} exists but has {problem}; remove it to download it again")
    return "md5" if file.md5 else "size"


def _content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """(first byte, full length or None) from a ``Content-Range: bytes a-b/n`` header."""
    m = _CONTENT_RANGE_RE.match((value or "").strip())
    if m is None:
        raise DownloadError(f"{url}: 206 answer with an unreadable Content-Range {value!r}")
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _transfer(url: str, part: Path, file: PublicFile, bar: Progress, task, timeout: float) -> None:
    """One HTTP request: continue ``part`` from where it stops (or start it) until the body ends.

    Raises:
        _Interrupted: the body broke off (the caller retries or reports).
        DownloadError: the server refused or answered something unusable.
        ChecksumError: the server's file is longer than the catalog's size.
    """
    have = part.stat().st_size if part.exists() else 0
    if file.size is not None and have > file.size:
        # Longer than the whole file: cannot be a prefix of it.
        part.unlink()
        have = 0
    if file.size is not None and have == file.size:
        return  # complete already (cut just before the rename); the check decides
    headers = {"User-Agent": "pcdata", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and have:
            return  # nothing past what we hold: the part is whole (or wrong, which the check finds)
        if err.code == 429 or err.code >= 500:
            # Busy or failing server (Zenodo rate-limits): worth another try, the part stays valid.
            raise _Interrupted(f"{url}: server answered {err.code} {err.reason}", resumable=True) from err
        raise DownloadError(f"{url}: server answered {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise _Interrupted(f"{url}: cannot connect: {reason}", resumable=True) from err

    with resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"), url)
            if start != have:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"{url}: asked for byte {have}, got byte {start}", resumable=False)
            mode, resumable = "ab", True
        elif resp.status == 200:
            # Either a fresh start or a server that ignores Range: both begin at byte 0.
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            resumable = resp.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        else:
            raise DownloadError(f"{url}: unexpected answer {resp.status} {resp.reason}")
        if file.size is not None and total is not None and total != file.size:
            raise ChecksumError(f"{file.name} at {url} is {total} bytes, the catalog says {file.size}")
        total = total if total is not None else file.size
        bar.update(task, total=total, completed=have)
        with open(part, mode) as out:
            try:
                while chunk := resp.read(_BLOCK):
                    out.write(chunk)
                    have += len(chunk)
                    bar.update(task, completed=have)
                    if total is not None and have > total:
                        raise ChecksumError(f"{file.name} at {url}: more than the expected {total} bytes")
            except ChecksumError:
                raise  # an OSError too, but not a broken connection
            except (http.client.HTTPException, OSError) as err:
                out.flush()
                raise _Interrupted(f"{url}: connection broke after {have} of {total or '?'} bytes ({err})",
                                   resumable) from err
            out.flush()
            os.fsync(out.fileno())
        if total is not None and have < total:
            raise _Interrupted(f"{url}: body ended after {have} of {total} bytes", resumable)


def _fetch(file: PublicFile, url: str, target: Path, bar: Progress, *, retries: int, timeout: float,
           dataset: PublicDataset) -> None:
    """Bring ``file`` to ``target`` through ``<target>.part``, resuming up to ``retries`` times."""
    part = target.with_name(target.name + ".part")
    task = bar.add_task(file.name, total=file.size)
    try:
        attempt = 0
        while True:
            try:
                _transfer(url, part, file, bar, task, timeout)
                break
            except _Interrupted as err:
                if not err.resumable:
                    part.unlink(missing_ok=True)
                if attempt >= retries:
                    kept = f"; {part.name} is kept: run again to resume" if part.exists() else ""
                    raise DownloadError(f"{err}{kept}") from err
                attempt += 1
                time.sleep(_RETRY_DELAY_S * attempt)
        problem = _mismatch(part, file)
        if problem is None and file.md5 is None:
            problem = _content_problem(part, file, dataset)
        if problem is not None:
            raise ChecksumError(f"{file.name} downloaded from {url} has {problem}")
        if file.md5 is None:
            _record_sha256(part, file.name)
    except ChecksumError as err:
        # A wrong file is of no use for resuming either: nothing is left behind.
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{err}; the download was removed") from None
    if file.md5 is None:
        os.replace(_sidecar(part), _sidecar(target))
    os.replace(part, target)


def download(
    name: str | PublicDataset,
    *,
    dir: str | os.PathLike = ".",
    base_url: str | None = None,
    progress: bool = True,
    catalog: PublicCatalog | str | os.PathLike | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> list[Path]:
    """Download every file of a catalogued dataset into ``dir`` and check it.

    Args:
        name: the dataset's catalog name (``jetnet:t``, ``calochallenge:ds2``) or the dataset itself.
        dir: the directory to put the files in, created if needed. Default: the current directory.
        base_url: a mirror; files come from ``<base_url>/<record>/<name>``. Default: the
            ``PCDATA_MIRROR`` environment variable, else each file's catalog URL (Zenodo).
        progress: show a progress bar per file on stderr. Default: True.
        catalog: a catalog object or file to look ``name`` up in. Default: the shipped catalog.
        retries: how many times to resume a transfer that breaks off, within this call. Default: 3.
        timeout: seconds without an answer before a request is given up. Default: 60.

    Returns:
        The paths of the dataset's files, in catalog order, each complete and checked against
        the size and MD5 the catalog records (where it records them).

    Raises:
        DatasetNotFoundError: ``name`` is not in the catalog.
        ChecksumError: a downloaded file has the wrong size or MD5 (it is removed), or a file
            already in ``dir`` does (it is left alone).
        DownloadError: the server refused, could not be reached, or the transfer broke more than
            ``retries`` times (a resumable ``.part`` is kept for the next run).
    """
    dataset = name if isinstance(name, PublicDataset) else get_dataset(name, catalog)
    base = resolve_base_url(base_url)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    paths: list[Path] = []
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        for file in dataset.files:
            target = out / file.name
            if target.exists():
                how = _check_existing(target, file, dataset)
                if progress:
                    bar.console.print(f"{file.name}: already here ({how})")
            else:
                _fetch(file, file_url(file, base), target, bar, retries=retries, timeout=timeout, dataset=dataset)
                if progress and file.md5 is None:
                    bar.console.print(f"{file.name}: no md5 published in the catalog; its content was checked and "
                                      f"its sha256 recorded in {_sidecar(target).name}")
            paths.append(target)
    return paths
