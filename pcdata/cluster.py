"""Where Dask work runs: a description of the cluster, and a ``distributed.Client`` from it.

One :class:`ClusterSpec` says where the workers are: a ``local`` cluster on this machine (the
default), an existing ``scheduler`` (by address or scheduler file), GPUs on this machine
(``cuda``, dask-cuda), or jobs of a batch system through dask-jobqueue (``slurm``, ``pbs``,
``htcondor``, ``lsf``, ``sge``). It is written once as YAML and given to ``--cluster`` (or
``PCDATA_CLUSTER``); ingest and sweeps take it, or a ready ``distributed.Client``::

    kind: slurm
    cores: 1             # per job (one single-threaded worker per job by default)
    memory: 4GB
    walltime: "02:00:00"
    queue: maxcpu        # the partition
    job_extra: ["--constraint=INTEL"]
    workers: 50          # jobs to start; or adaptive: {minimum: 0, maximum: 200}
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ClusterError

__all__ = ["ClusterSpec", "Adaptive", "BATCH_SYSTEMS", "CLUSTER_ENV", "connect", "default_workers", "load_cluster",
           "resolve_cluster"]

#: The environment variable naming a cluster description file, used when none is given.
CLUSTER_ENV = "PCDATA_CLUSTER"

#: Batch systems and their dask-jobqueue cluster classes.
BATCH_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "htcondor": "HTCondorCluster",
                 "lsf": "LSFCluster", "sge": "SGECluster"}
KINDS = ("local", "scheduler", "cuda", *BATCH_SYSTEMS)


def default_workers() -> int:
    """The machine's cores (what a local cluster gets when no number is given)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@dataclass(frozen=True)
class Adaptive:
    """Batch jobs scaled with the work between ``minimum`` and ``maximum``."""

    minimum: int = 0
    maximum: int = 1


@dataclass(frozen=True)
class ClusterSpec:
    """Where the Dask workers run (a frozen description; :func:`connect` makes the client).

    Attributes:
        kind: ``local``, ``scheduler``, ``cuda`` or a batch system (:data:`BATCH_SYSTEMS`).
        workers: local worker processes (default: the cores); for a batch system the jobs to
            start (default 1 unless ``adaptive``).
        address: the scheduler's address (``tcp://host:8786``), kind ``scheduler``.
        scheduler_file: the scheduler's JSON file (``dask scheduler --scheduler-file``), kind ``scheduler``.
        cores, processes, memory: per batch job (``memory`` is required there, e.g. ``4GB``):
            the job runs ``processes`` workers sharing its ``cores`` (default one worker, one core).
        walltime, queue, account: the job's limit, partition/queue and account or project.
        job_extra: extra directives of the job script (``--constraint=INTEL``, ``-l gpu=1``).
        prologue: shell lines run before the worker starts (``source venv/bin/activate``).
        python: the worker's Python on the nodes (default: this interpreter).
        local_directory, log_directory: the worker's scratch folder and the job logs.
        interface: the network interface the scheduler and workers talk on (``ib0``).
        adaptive: scale between a minimum and a maximum of jobs instead of ``workers``.
        wait: seconds to wait for the first worker (a queued batch job) before giving up.
    """

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    scheduler_file: str | None = None
    cores: int = 1
    processes: int = 1
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_extra: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()
    python: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    adaptive: Adaptive | None = None
    wait: float = 600.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ClusterError(f"kind: unknown cluster kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        for name in ("workers", "cores", "processes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ClusterError(f"{name}: must be a whole number >= 1, got {value!r}")
        if not (isinstance(self.wait, (int, float)) and self.wait > 0):
            raise ClusterError(f"wait: must be a positive number of seconds, got {self.wait!r}")
        if self.kind == "scheduler" and (self.address is None) == (self.scheduler_file is None):
            raise ClusterError("address: a scheduler cluster needs exactly one of address and scheduler_file")
        if self.kind != "scheduler" and (self.address or self.scheduler_file):
            raise ClusterError(f"address: only kind 'scheduler' connects to an existing scheduler (kind is {self.kind!r})")
        if self.kind in BATCH_SYSTEMS:
            if not self.memory:
                raise ClusterError(f"memory: a {self.kind} job needs its memory, e.g. memory: 4GB")
            if self.adaptive is not None and self.workers is not None:
                raise ClusterError("adaptive: give either workers (a fixed number of jobs) or adaptive, not both")
            if self.processes > self.cores:
                raise ClusterError(f"processes: {self.processes} workers per job need at least as many cores (cores: {self.cores})")
        elif self.adaptive is not None:
            raise ClusterError(f"adaptive: only batch clusters scale adaptively (kind is {self.kind!r})")
        if self.adaptive is not None:
            lo, hi = self.adaptive.minimum, self.adaptive.maximum
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi and hi >= 1):
                raise ClusterError(f"adaptive: need 0 <= minimum <= maximum and maximum >= 1, got {lo} and {hi}")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "ClusterSpec":
        """A spec from a YAML mapping; unknown keys and wrong types are errors naming the key."""
        if not isinstance(doc, Mapping):
            raise ClusterError(f"a cluster description is a mapping of keys (kind, workers, ...), got {type(doc).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise ClusterError(f"{unknown[0]}: unknown key of a cluster description, expected one of {', '.join(known)}")
        values: dict[str, Any] = {}
        for key, value in doc.items():
            if key in ("job_extra", "prologue"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise ClusterError(f"{key}: expected a list of strings, got {value!r}")
                value = tuple(value)
            elif key == "adaptive":
                if not isinstance(value, Mapping) or set(value) - {"minimum", "maximum"}:
                    raise ClusterError(f"adaptive: expected {{minimum: N, maximum: M}}, got {value!r}")
                value = Adaptive(**value)
            elif key == "memory" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            elif key in ("kind", "address", "scheduler_file", "memory", "walltime", "queue", "account", "python",
                         "local_directory", "log_directory", "interface"):
                if value is not None and not isinstance(value, str):
                    raise ClusterError(f"{key}: expected a string, got {value!r}")
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The keys that differ from the defaults (what a YAML file would hold)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = vars(value) if isinstance(value, Adaptive) else list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        """One line for logs and errors."""
        if self.kind == "scheduler":
            return f"the Dask scheduler at {self.address or self.scheduler_file}"
        if self.kind in BATCH_SYSTEMS:
            n = f"{self.adaptive.minimum}-{self.adaptive.maximum}" if self.adaptive else str(self.workers or 1)
            return f"{n} {self.kind} jobs"
        if self.kind == "cuda":
            return "a local CUDA cluster"
        return f"a local cluster of {self.workers or default_workers()} workers"


def load_cluster(path: str | os.PathLike) -> ClusterSpec:
    """Read a cluster description YAML file; an error names the file and the key."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError as err:
        raise ClusterError(f"{path}: no such cluster description file") from err
    except IsADirectoryError as err:
        raise ClusterError(f"{path}: is a directory, expected a cluster description YAML file") from err
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ClusterError(f"{path}: not a YAML file ({str(err).splitlines()[0]})") from err
    try:
        return ClusterSpec.from_dict(doc if doc is not None else {})
    except (ClusterError, TypeError) as err:
        raise ClusterError(f"{path}: {err}") from err


def resolve_cluster(cluster: Any = None) -> Any:
    """A ``distributed.Client`` as given, else a :class:`ClusterSpec` from what was given.

    ``None`` reads the file named by ``PCDATA_CLUSTER``, else a local cluster; a string with a
    scheme (``tcp://host:8786``) is a scheduler address; another string or path is a YAML file;
    a mapping is a description.
    """
    if cluster is None:
        env = os.environ.get(CLUSTER_ENV)
        return load_cluster(env) if env else ClusterSpec()
    if isinstance(cluster, ClusterSpec):
        return cluster
    if isinstance(cluster, Mapping):
        return ClusterSpec.from_dict(cluster)
    if isinstance(cluster, (str, os.PathLike)):
        text = os.fspath(cluster)
        return ClusterSpec(kind="scheduler", address=text) if "://" in text else load_cluster(text)
    from distributed import Client

    if isinstance(cluster, Client):
        return cluster
    raise ClusterError(f"cluster: expected a ClusterSpec, a mapping, a YAML path, an address or a "
                       f"distributed.Client, got {type(cluster).__name__}")


@contextlib.contextmanager
def connect(cluster: Any = None) -> Iterator[Any]:
    """A ``distributed.Client`` for the duration of the block (see :func:`resolve_cluster`).

    A client given is used as it is and left open; anything started here is closed after.

    Raises:
        ClusterError: the scheduler cannot be reached, no batch worker joined within ``wait``
            seconds, GPUs are asked for but there are none, or dask-jobqueue/dask-cuda is missing.
    """
    from distributed import Client

    spec = resolve_cluster(cluster)
    if isinstance(spec, Client):
        yield spec
        return
    if spec.kind == "scheduler":
        if spec.scheduler_file and not os.path.isfile(spec.scheduler_file):
            # distributed would wait for the file forever
            raise ClusterError(f"cannot reach {spec.describe()} (no such file: start the scheduler with "
                               f"dask scheduler --scheduler-file {spec.scheduler_file})")
        try:
            client = (Client(spec.address, timeout="10s") if spec.address
                      else Client(scheduler_file=spec.scheduler_file, timeout="10s"))
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(f"cannot reach {spec.describe()} ({err})") from err
        try:
            yield client
        finally:
            client.close()
        return
    started = _start(spec)
    try:
        with Client(started) as client:
            if spec.kind in BATCH_SYSTEMS:
                _wait_for_first_worker(client, spec)
            yield client
    finally:
        started.close()


def _start(spec: ClusterSpec):
    if spec.kind == "cuda":
        return _cuda_cluster()
    if spec.kind in BATCH_SYSTEMS:
        return _batch_cluster(spec)
    from distributed import LocalCluster

    n = spec.workers or default_workers()
    try:
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                            dashboard_address=":0",  # a free port: no warning when 8787 is taken
                            silence_logs=_worker_log_level())
    except Exception as err:  # distributed raises RuntimeError/OSError/TimeoutError here
        raise ClusterError(f"cannot start a local Dask cluster with {n} workers ({err})") from err


def _batch_cluster(spec: ClusterSpec):
    try:
        import dask_jobqueue
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise ClusterError(f"kind: {spec.kind} needs dask-jobqueue: pip install dask-jobqueue") from err
    cls = getattr(dask_jobqueue, BATCH_SYSTEMS[spec.kind])
    kwargs: dict[str, Any] = {
        "cores": spec.cores, "processes": spec.processes, "memory": spec.memory,
        "job_extra_directives": list(spec.job_extra), "job_script_prologue": list(spec.prologue),
        "python": spec.python or _python(), "silence_logs": _level_name(),
        "scheduler_options": {"dashboard_address": ":0"},
    }
    if spec.kind != "htcondor":  # HTCondor has no queue or walltime directive
        kwargs.update(queue=spec.queue, walltime=spec.walltime)
        if spec.kind in ("slurm", "pbs", "lsf"):
            kwargs["account"] = spec.account
        elif spec.account:
            kwargs["project"] = spec.account
    for key in ("local_directory", "log_directory", "interface"):
        if getattr(spec, key):
            kwargs[key] = getattr(spec, key)
    try:
        cluster = cls(**{k: v for k, v in kwargs.items() if v is not None})
    except Exception as err:  # a bad value (memory '4 bananas'), a missing sbatch
        raise ClusterError(f"cannot start {spec.describe()} ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    if spec.adaptive is not None:
        cluster.adapt(minimum_jobs=spec.adaptive.minimum, maximum_jobs=spec.adaptive.maximum)
    else:
        cluster.scale(jobs=spec.workers or 1)
    return cluster


def _wait_for_first_worker(client, spec: ClusterSpec) -> None:
    """Batch jobs queue: wait for the first worker, so a cluster that never starts is an error
    (not a silent hang); later workers join while the work runs."""
    import asyncio

    try:
        client.wait_for_workers(1, timeout=spec.wait)
    except (TimeoutError, asyncio.TimeoutError) as err:
        where = f"; the job logs are in {spec.log_directory}" if spec.log_directory else ""
        raise ClusterError(f"no worker of {spec.describe()} joined within {spec.wait:g} s: are the jobs queued "
                           f"or failing? (squeue / condor_q{where})") from err


def _python() -> str:
    import sys

    return sys.executable


def _cuda_cluster():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        raise ClusterError("gpu: needs torch with CUDA") from err
    if not torch.cuda.is_available():
        raise ClusterError("gpu: no CUDA GPU is available on this machine (torch.cuda.is_available() is False)")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as err:
        raise ClusterError("gpu: needs dask-cuda: pip install 'pointcloud-platform[gpu]'") from err
    return LocalCUDACluster(dashboard_address=":0", silence_logs=_worker_log_level())


def _worker_log_level() -> int:
    """The workers' stderr: quiet, since a task's failure reaches the user as one line from the
    client; with ``PCDATA_VERBOSE`` (``pcdata -v``) their warnings and errors with tracebacks."""
    return logging.WARNING if os.environ.get("PCDATA_VERBOSE") else logging.CRITICAL


def _level_name() -> str:
    return "warning" if os.environ.get("PCDATA_VERBOSE") else "critical"
