"""Process-group set-up for training under ``torchrun``, in one place.

Rank and world size come from :func:`pcdata.loaders.detect_ranks`, the detector the loader uses
too. Under torchrun (``WORLD_SIZE > 1``) the process group is initialised from the environment
(``MASTER_ADDR``/``MASTER_PORT`` or a rendezvous endpoint; gloo on the CPU, NCCL on GPUs) unless the
caller already did, and destroyed at the end if we made it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from pcdata.loaders import detect_ranks

from ..errors import ConfigError

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process among the training processes, and its device."""

    rank: int
    world_size: int
    device: torch.device
    owned: bool = False

    @classmethod
    def setup(cls, device: str = "cpu") -> "Distributed":
        """Detect the world, pick the device (``cuda`` -> this rank's ``LOCAL_RANK`` GPU) and join the group."""
        rank, world = detect_ranks()
        dev = torch.device(device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError("device: cuda asked for, but no CUDA GPU is available on this machine")
            if world > 1:
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        owned = False
        if world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            owned = True
        return cls(rank, world, dev, owned)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.owned and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
