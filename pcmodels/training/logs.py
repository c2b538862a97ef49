"""Run logs: one CSV (``RUN/log.csv``, append-only, survives resumes) and TensorBoard (``RUN/tb``)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

__all__ = ["RunLogger"]


class RunLogger:
    """Append ``(step, name, value)`` rows to CSV and scalars to TensorBoard (rank 0 only)."""

    def __init__(self, run: Path, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        run.mkdir(parents=True, exist_ok=True)
        path = run / "log.csv"
        # a run killed before its header reached the disk left an empty file: it gets the header
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "name", "value"])
            self._file.flush()
        try:
            with warnings.catch_warnings():
                # tensorboard's protobuf and pkg_resources imports warn on recent Pythons.
                warnings.simplefilter("ignore")
                from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(run / "tb"))
        except ImportError:  # TensorBoard is optional: the CSV log carries the same numbers
            self._tb = None

    def log(self, step: int, values: dict[str, float | None]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            if value is None:
                continue
            self._csv.writerow([step, name, f"{value:.8g}"])
            if self._tb is not None:
                self._tb.add_scalar(name, value, step)
        self._file.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()
