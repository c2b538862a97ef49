"""Where this process stands: its rank among the training processes and its DataLoader worker.

The one place that asks torch.distributed and torch.utils.data who we are; everything else in
pcdata takes a :class:`World` (the rule of streaming loaders: detect once, use everywhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["World", "detect_ranks", "detect_worker"]


@dataclass(frozen=True)
class World:
    """A rank and a DataLoader worker inside it.

    Attributes:
        rank: this process among ``world_size`` training processes.
        world_size: number of training processes (1 without torch.distributed).
        worker: this DataLoader worker, 0 in the main process.
        num_workers: number of DataLoader workers of the rank (1 when reading in the main process).
    """

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={self.rank} world_size={self.world_size}")
        if self.num_workers < 1 or not 0 <= self.worker < self.num_workers:
            raise ValueError(f"worker must be in [0, num_workers), got worker={self.worker} num_workers={self.num_workers}")


def detect_ranks(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the explicit values, else torch.distributed's when it is initialised,
    else ``RANK``/``WORLD_SIZE`` from the environment (set by ``torchrun``), else ``(0, 1)``.

    Raises:
        ValueError: only one of ``rank`` and ``world_size`` given, or a rank outside ``[0, world_size)``.
    """
    if (rank is None) != (world_size is None):
        raise ValueError(f"give both rank and world_size or neither, got rank={rank} world_size={world_size}")
    if rank is None:
        rank, world_size = _from_torch() or _from_env() or (0, 1)
    World(rank=int(rank), world_size=int(world_size))  # validates
    return int(rank), int(world_size)


def _from_torch() -> tuple[int, int] | None:
    try:
        import torch.distributed as dist
    except ImportError:  # a torch build without distributed support
        return None
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def _from_env() -> tuple[int, int] | None:
    rank, size = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or size is None:
        return None
    try:
        return int(rank), int(size)
    except ValueError as err:
        raise ValueError(f"RANK={rank!r} and WORLD_SIZE={size!r} in the environment must be integers") from err


def detect_worker() -> tuple[int, int]:
    """``(worker, num_workers)`` of the DataLoader worker running this code, ``(0, 1)`` outside one."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)
