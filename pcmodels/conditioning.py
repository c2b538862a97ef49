"""A model of the clouds' multiplicity and conditioning fields, so that sampling needs no real data.

A smoothed joint empirical distribution: training rows ``(multiplicity, field_1, ..., field_k)`` are
kept (a seeded subsample of at most ``max_rows``), sampling draws rows uniformly and adds Gaussian
noise to the continuous fields with Scott's bandwidth (a Gaussian kernel density estimate). Integer
fields (multiplicity, num_particles, labels) are drawn exactly as observed, so the multiplicity
distribution and its correlations with the other fields are those of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CloudFieldModel"]


@dataclass(frozen=True)
class CloudFieldModel:
    """Joint distribution of ``counts`` (points per cloud) and named cloud fields.

    Attributes:
        names: field names, in column order of ``rows``.
        rows: ``[n, k]`` float64 observed fields.
        counts: ``[n]`` int64 observed multiplicities (points kept per cloud).
        discrete: per field, True when it is integer-valued (drawn exactly).
        bandwidth: per field, the Gaussian smoothing width (0 for discrete fields).
    """

    names: tuple[str, ...]
    rows: np.ndarray
    counts: np.ndarray
    discrete: tuple[bool, ...]
    bandwidth: tuple[float, ...]

    @classmethod
    def fit(cls, fields: dict[str, np.ndarray], counts: np.ndarray, *, max_rows: int = 200_000,
            seed: int = 0, smoothing: float = 1.0) -> "CloudFieldModel":
        """Keep (a subsample of) the observed rows and choose the smoothing per field."""
        names = tuple(fields)
        rows = np.stack([np.asarray(fields[n], dtype=np.float64) for n in names], axis=1) if names else \
            np.zeros((len(counts), 0))
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) == 0:
            raise ValueError("cannot fit a cloud-field model on zero clouds")
        if len(counts) > max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(counts), max_rows, replace=False))
            rows, counts = rows[keep], counts[keep]
        discrete = tuple(bool(np.all(rows[:, j] == np.round(rows[:, j]))) for j in range(rows.shape[1]))
        d = max(1, sum(not x for x in discrete))
        scott = len(counts) ** (-1.0 / (d + 4))
        bandwidth = tuple(0.0 if discrete[j] else float(smoothing * scott * rows[:, j].std()) for j in range(rows.shape[1]))
        return cls(names, rows, counts, discrete, bandwidth)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Draw ``n`` clouds' ``(counts, fields)``; continuous fields stay inside the observed range."""
        g = generator or torch.Generator().manual_seed(0)
        pick = torch.randint(0, len(self.counts), (n,), generator=g).numpy()
        noise = torch.randn((n, len(self.names)), generator=g, dtype=torch.float64).numpy()
        rows = self.rows[pick] + noise * np.asarray(self.bandwidth)
        lo, hi = self.rows.min(axis=0), self.rows.max(axis=0)
        rows = np.clip(rows, lo, hi)
        return self.counts[pick].copy(), {name: rows[:, j] for j, name in enumerate(self.names)}

    def sample_given(self, name: str, values: np.ndarray, generator: torch.Generator | None = None,
                     neighbours: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(counts, fields)`` for clouds whose field ``name`` is given (e.g. incident energies):
        each row is drawn among the ``neighbours`` training rows nearest in ``name`` (a
        nearest-neighbour conditional), and ``name`` takes the given value."""
        if name not in self.names:
            raise KeyError(f"the field model has no field {name!r} (has {', '.join(self.names) or 'none'})")
        g = generator or torch.Generator().manual_seed(0)
        values = np.asarray(values, dtype=np.float64)
        j = self.names.index(name)
        order = np.argsort(self.rows[:, j], kind="stable")
        k = min(neighbours, len(order))
        pos = np.searchsorted(self.rows[order, j], values)
        start = np.clip(pos - k // 2, 0, len(order) - k)
        pick = order[start + torch.randint(0, k, (len(values),), generator=g).numpy()]
        fields = {n: self.rows[pick, i].copy() for i, n in enumerate(self.names)}
        fields[name] = values.copy()
        return self.counts[pick].copy(), fields

    # -- saving: plain arrays and JSON, no pickle ------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        return {"fieldmodel.rows": torch.from_numpy(np.ascontiguousarray(self.rows)),
                "fieldmodel.counts": torch.from_numpy(np.ascontiguousarray(self.counts))}

    def meta(self) -> dict:
        return {"names": list(self.names), "discrete": list(self.discrete), "bandwidth": list(self.bandwidth)}

    @classmethod
    def restore(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "CloudFieldModel":
        return cls(tuple(meta["names"]), tensors["fieldmodel.rows"].numpy(), tensors["fieldmodel.counts"].numpy(),
                   tuple(meta["discrete"]), tuple(meta["bandwidth"]))
