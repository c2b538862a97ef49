"""The physical limit of an ingest on this machine: read the inputs, write the output's bytes raw."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def store_bytes(path: Path) -> int:
    """Bytes of every file of a store."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def write_raw(nbytes: int, directory: Path, block: int = 8 << 20) -> float:
    """Seconds to write ``nbytes`` to one new file in 8 MB blocks and fsync it (the store's bytes
    written with no format, no conversion and no checks), best of two."""
    data = np.random.default_rng(0).integers(0, 255, size=block, dtype=np.uint8).tobytes()
    best = float("inf")
    for _ in range(2):
        path = Path(directory) / ".raw-write-limit"
        t = time.perf_counter()
        with open(path, "wb") as f:
            left = nbytes
            while left > 0:
                f.write(data[: min(block, left)])
                left -= block
            f.flush()
            os.fsync(f.fileno())
        best = min(best, time.perf_counter() - t)
        path.unlink()
    return best
