"""Where ingest work runs: a LocalCluster by default, an existing scheduler by address, or GPUs."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from ..errors import ClusterError

__all__ = ["dask_client", "default_workers"]


def default_workers() -> int:
    """The machine's cores (what a LocalCluster gets when no number is given)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None, gpu: bool = False) -> Iterator["object"]:
    """A ``distributed.Client`` for the duration of the block.

    Args:
        workers: worker processes of a new LocalCluster (one thread each; default: the cores).
        scheduler: address of an existing scheduler (``tcp://host:8786``); ``workers`` is ignored.
        gpu: start a dask-cuda LocalCUDACluster (one worker per GPU) instead of a LocalCluster.

    Raises:
        ClusterError: the scheduler cannot be reached, or GPUs are asked for but there are none.
    """
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise ClusterError(f"--workers must be >= 1, got {workers}")
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from err
        try:
            yield client
        finally:
            client.close()
        return
    if gpu:
        cluster = _cuda_cluster()
    else:
        try:
            cluster = LocalCluster(
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: no warning when 8787 is taken
                silence_logs=_worker_log_level(),
            )
        except Exception as err:  # distributed raises RuntimeError/OSError/TimeoutError here
            raise ClusterError(f"cannot start a local Dask cluster with {workers or default_workers()} workers ({err})") from err
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _cuda_cluster():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        raise ClusterError("--gpu needs torch with CUDA") from err
    if not torch.cuda.is_available():
        raise ClusterError("--gpu: no CUDA GPU is available on this machine (torch.cuda.is_available() is False)")
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as err:
        raise ClusterError("--gpu needs dask-cuda: pip install 'pointcloud-platform[gpu]'") from err
    return LocalCUDACluster(dashboard_address=":0", silence_logs=_worker_log_level())


def _worker_log_level() -> int:
    """The workers' stderr: quiet, since a task's failure reaches the user as one line from the
    client; with ``PCDATA_VERBOSE`` (``pcdata -v``) their warnings and errors with tracebacks."""
    return logging.WARNING if os.environ.get("PCDATA_VERBOSE") else logging.CRITICAL
