"""The generic ingest pipeline: partitions of a source become fragments, written on Dask workers.

A source is any picklable object with ``name``, ``files`` (each with ``path`` and ``size``),
``rows()`` (clouds per file) and ``read(file_index, start, stop) -> Clouds``. Each row block is one
Dask task, a picklable :class:`WriteFragments` over ``(file_index, start, stop)`` blocks that opens the file
inside the task. Workers return the fragment's counts, checksum and partial statistics; the client
commits them to the root metadata as they finish and merges the statistics at the end, so the data
is read once.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import json
import os
import shlex
import socket
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, Sequence

from .. import __version__
from ..clouds import Clouds
from ..errors import IngestError, PcdataError, SourceError
from ..store.format import FORMAT_VERSION, FragmentInfo, Provenance, SourceFile, StoreMeta, fragment_id
from ..store.metadata import fragment_dir
from ..store.writer import FragmentWriter, completed_store, prepare_store
from ..cluster import connect
from ..sources._inputs import check_distinct
from ..sources._remote import input_identity, input_sha256, is_url
from ..store.reader import Store, open_store
from .formats import get_format
from .options import IngestOptions
from .visibility import WorkerVisibilityError, check_posix_output, check_visibility, worker_name

__all__ = ["Source", "Partition", "WriteFragments", "group_partitions", "plan_partitions", "fingerprint", "ingest", "run_ingest"]


class Source(Protocol):
    name: str
    files: Sequence[Any]

    def rows(self) -> list[int]: ...

    def read(self, file_index: int, start: int, stop: int) -> Clouds: ...


@dataclass(frozen=True)
class Partition:
    """One row block of one input file; it becomes fragment ``fragment``."""

    fragment: str
    file_index: int
    start: int
    stop: int


def plan_partitions(rows: Sequence[int], rows_per_fragment: int) -> list[Partition]:
    """Cut every file into blocks of ``rows_per_fragment`` rows, numbered across files."""
    if rows_per_fragment < 1:
        raise ValueError(f"rows per fragment must be >= 1, got {rows_per_fragment}")
    parts: list[Partition] = []
    for file_index, n in enumerate(rows):
        for start in range(0, n, rows_per_fragment):
            parts.append(Partition(fragment_id(len(parts)), file_index, start, min(n, start + rows_per_fragment)))
    return parts


@dataclass(frozen=True)
class WriteFragments:
    """The Dask task: read partitions and write each as one fragment (picklable, no open files).

    A task holds one partition at a time; several partitions per task only spare the scheduler
    and the commits when fragments are tiny (a store of 10^5 fragments is a few hundred tasks)."""

    writer: FragmentWriter
    source: Any

    def __call__(self, parts: Sequence[Partition]) -> tuple[str, list[FragmentInfo]]:
        worker = worker_name()
        if not os.path.exists(os.path.join(self.writer.store, "zarr.json")):
            # A worker on another filesystem would write fragments nobody else sees.
            raise WorkerVisibilityError(f"worker {worker}: cannot see the store {self.writer.store}; "
                                        "the store must be on a filesystem every worker mounts")
        infos = []
        for run in _read_runs(parts):
            first, last = run[0], run[-1]
            block = self.source.read(first.file_index, first.start, last.stop)
            for part in run:
                clouds = block if len(run) == 1 else block.slice(part.start - first.start, part.stop - first.start)
                infos.append(self.writer.write(part.fragment, clouds,
                                               source={"file": part.file_index, "start": part.start, "stop": part.stop}))
        return worker, infos


_READ_ROWS = 4096  # tiny partitions of one file are read together, up to this many rows


def _read_runs(parts: Sequence[Partition]) -> list[list[Partition]]:
    """Consecutive partitions of one file, up to ``_READ_ROWS`` rows together: one read each
    (opening an input file costs more than reading a few rows of it)."""
    runs: list[list[Partition]] = []
    for part in parts:
        run = runs[-1] if runs else None
        if (run and run[-1].file_index == part.file_index and run[-1].stop == part.start
                and part.stop - run[0].start <= _READ_ROWS):
            run.append(part)
        else:
            runs.append([part])
    return runs


def group_partitions(parts: Sequence[Partition], threads: int) -> list[list[Partition]]:
    """Consecutive partitions in tasks: one each while there are few, up to 256 when there are
    so many that each thread would get more than 16 tasks (so every thread still gets 16)."""
    size = max(1, min(256, len(parts) // (16 * max(1, threads))))
    return [list(parts[i : i + size]) for i in range(0, len(parts), size)]


def fingerprint(source: Source, options: dict[str, Any]) -> str:
    """Identity of an ingest: the inputs (absolute path, size, mtime; a URL with its size, ETag and
    Last-Modified as the server reports them) and every option that changes the result. A re-run
    with the same fingerprint resumes an interrupted build."""
    files = [input_identity(f.path) for f in source.files]
    doc = {"source": source.name, "files": files, "options": options, "format": FORMAT_VERSION}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _located(path: str) -> str:
    return path if is_url(path) else os.path.abspath(path)


def _provenance(source: Source, checksums: list[str], command: str | None) -> Provenance:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = os.environ.get("USER", "")
    return Provenance(
        sources=tuple(SourceFile(_located(f.path), int(f.size), s) for f, s in zip(source.files, checksums)),
        command=command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        tool=f"pcdata {__version__}",
        user=user,
        host=socket.gethostname(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _check_committable(builder, worker: str, infos: Sequence[FragmentInfo]) -> None:
    """The client commits only fragments it sees itself (a worker writing elsewhere is caught)."""
    for info in infos:
        path = Path(fragment_dir(str(builder.path), builder.generation, info.id))
        if not (path / "zarr.json").is_file():
            raise WorkerVisibilityError(f"worker {worker}: wrote fragment {info.id}, which is not visible here at "
                                        f"{path}; the store must be on a filesystem every worker mounts")


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled,
    )


def _running_keys(prefix: str, dask_worker=None) -> list[str]:
    """Keys of this run's tasks that a worker is still executing (runs on the workers)."""
    state = dask_worker.state
    return [str(ts.key) for ts in (*state.executing, *state.long_running) if str(ts.key).startswith(prefix)]


def _stop(client, futures: list, prefix: str, timeout: float = 120.0) -> None:
    """Cancel this run's tasks and wait until no worker is still executing one of them.

    Cancelling does not interrupt a task that already runs; removing the store while one still
    writes would let it recreate directories there. So wait for the workers to go quiet.
    """
    import time

    client.cancel(futures)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            busy = client.run(_running_keys, prefix)
        except Exception:  # a worker died meanwhile: ask again
            busy = {"?": ["?"]}
        if not any(busy.values()):
            return
        time.sleep(0.05)


def run_ingest(
    source: Source,
    out: str | os.PathLike,
    template: StoreMeta,
    *,
    options: IngestOptions,
    identity: dict[str, Any],
    cluster: Any = None,
) -> StoreMeta:
    """Convert ``source`` into the store ``out`` on a Dask cluster (see :func:`ingest`).

    ``options`` must be resolved (a fragment size and a chunk layout). The cluster is started
    before anything is written, so a cluster failure leaves no trace. Before the first task every
    worker must see the store directory and the input files, and before a fragment is committed
    the client must see it: a worker on another filesystem is an error naming it, not a store
    reported complete with fragments missing. Bad input (:class:`SourceError` from a worker)
    removes what this run built; any other interruption keeps the committed fragments, and
    re-running the same call finishes the rest. Re-running it once the store is complete does nothing
    and starts no cluster.

    Returns:
        The metadata of the finished store.
    """
    rows_per_fragment, chunks = options.rows_per_fragment, options.chunks
    if rows_per_fragment is None or chunks is None:
        raise ValueError("run_ingest needs resolved options (IngestOptions.resolved)")
    parts = plan_partitions(source.rows(), rows_per_fragment)
    template = replace(template, expected_fragments=len(parts), layout=chunks,
                       fingerprint=fingerprint(source, {**identity, **options.identity()}))
    out = Path(out).absolute()
    done = None if options.overwrite else completed_store(out, template.fingerprint)
    if done is not None:  # the same inputs and options, finished before: nothing to do, no cluster
        if options.progress:
            print(f"{out}: already complete (same inputs and options); nothing to do", file=sys.stderr)
        return done
    with connect(cluster) as client:
        from distributed import as_completed

        check_workers = getattr(source, "check_workers", None)
        if check_workers is not None:
            check_workers(client)
        builder = prepare_store(out, template, overwrite=options.overwrite, command=options.command)
        run = f"pcdata-{uuid.uuid4().hex[:8]}-"
        futures, sums = [], []
        try:
            check_visibility(client, out, [f.path for f in source.files])
            todo = [p for p in parts if p.fragment not in builder.committed]
            task = WriteFragments(builder.writer(fsync=options.fsync), source)
            groups = group_partitions(todo, max(1, sum(client.nthreads().values())))
            futures = client.map(task, groups, key=[f"{run}{g[0].fragment}" for g in groups])
            # A URL is streamed once on a worker for its checksum, as a local file is read there.
            sums = [client.submit(input_sha256, _located(f.path), key=f"{run}sha256-{i}")
                    for i, f in enumerate(source.files)]
            done_clouds = builder.meta.num_clouds
            with _progress(options.progress) as bar:
                tid = bar.add_task(f"ingest {source.name}", total=len(parts), completed=len(parts) - len(todo), rate="")
                start = _dt.datetime.now()
                for batch in as_completed(futures).batches():
                    infos = []
                    for f in batch:
                        worker, written = f.result()
                        _check_committable(builder, worker, written)
                        infos.extend(written)
                    builder.commit(*infos)
                    done_clouds += sum(i.num_clouds for i in infos)
                    secs = max(1e-9, (_dt.datetime.now() - start).total_seconds())
                    bar.update(tid, advance=len(infos), rate=f"{done_clouds / secs:,.0f} clouds/s")
            checksums = client.gather(sums)
            return builder.finish(provenance=_provenance(source, checksums, options.command))
        except (SourceError, WorkerVisibilityError):
            _stop(client, futures + sums, run)
            if builder.resumed:
                builder.close()  # keep what earlier runs committed
            else:
                builder.abort()
            raise
        except PcdataError:
            client.cancel(futures + sums)
            raise
        except Exception as err:
            client.cancel(futures + sums)
            raise IngestError(
                f"{out}: ingest stopped ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                "committed fragments are kept, re-run the same command to finish"
            ) from err
        finally:
            builder.close()


def ingest(
    format: str,
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    options: IngestOptions = IngestOptions(),
    cluster: Any = None,
    **params: Any,
) -> Store:
    """Convert input files of a registered format into a store at ``out``.

    Args:
        format: the input format (``jetnet``, ``calochallenge``, ``root``; see
            :data:`pcdata.ingest.FORMATS`).
        files: the input files (made absolute here, so workers anywhere read the same files), or
            ``http(s)://`` and ``root://`` (XRootD) URLs, read in byte ranges on the workers.
        out: the store directory to create (or to resume, after an interruption); a POSIX path:
            a URL (``s3://...``) is refused.
        options: what every ingest shares (:class:`IngestOptions`).
        cluster: where the work runs: a ``distributed.Client``, a
            :class:`~pcdata.cluster.ClusterSpec`, a YAML description file, a scheduler address;
            default ``$PCDATA_CLUSTER`` or a local cluster with one worker per core.
        **params: the format's own parameters (``label`` for JetNet, ``geometry`` for CaloChallenge, ...).

    Raises:
        SourceError: an input file is missing or breaks its format; nothing is left behind.
        ClusterError: no cluster, or a worker that cannot see the store or the inputs.
        StoreExistsError: ``out`` holds another store (without ``overwrite``).
    """
    fmt = get_format(format)
    out = check_posix_output(out)
    if not files:
        raise SourceError("files: no input files given")
    files = [str(f) if is_url(f) else os.path.abspath(f) for f in files]
    check_distinct(files)
    source = fmt.open(files, **params)
    resolved = options.resolved(rows_per_fragment=fmt.rows_per_fragment(source), chunks=fmt.chunks)
    run_ingest(source, out, fmt.template(source, options.splits), options=resolved,
               identity={"format": fmt.name, **fmt.identity(source, params)}, cluster=cluster)
    return open_store(out)
