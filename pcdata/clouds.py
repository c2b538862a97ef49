"""Ragged point clouds in memory: flat points + offsets + per-cloud fields.

:class:`Clouds` is the one in-memory currency of pcdata: sources produce it, the store writer
consumes it, the reader returns it, and every view (padded numpy, awkward, Arrow) is built from
its buffers with vectorised index arithmetic, never a Python loop over clouds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = ["Clouds", "Padded", "ragged_positions"]


def ragged_positions(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every point, the index of its cloud and its position inside that cloud.

    Args:
        offsets: int64 ``[n_clouds + 1]`` starting at 0.

    Returns:
        ``(cloud_index, position)``, both int64 ``[n_points]``.
    """
    counts = np.diff(offsets)
    n_points = int(offsets[-1] - offsets[0])
    cloud = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    position = np.arange(n_points, dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0], counts)
    return cloud, position


@dataclass(frozen=True)
class Padded:
    """Clouds padded to a common length.

    Attributes:
        points: float32 ``[B, N, F]``, zero where ``mask`` is False.
        mask: bool ``[B, N]``, True for real points.
        fields: the per-cloud fields, each ``[B]``.
        truncated: number of points dropped because a cloud was longer than N.
    """

    points: np.ndarray
    mask: np.ndarray
    fields: dict[str, np.ndarray]
    truncated: int


@dataclass(frozen=True, eq=False)
class Clouds:
    """A batch of ragged point clouds.

    Attributes:
        points: float32 ``[n_points, n_features]``, the clouds one after the other.
        offsets: int64 ``[n_clouds + 1]``, ``offsets[0] == 0``; cloud ``i`` is
            ``points[offsets[i]:offsets[i+1]]``.
        fields: per-cloud values, name -> array ``[n_clouds]``.
        point_features: names of the point feature columns.
    """

    points: np.ndarray
    offsets: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    point_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Internal invariant checks: a broken Clouds is a programming error, not user input,
        # but it would silently corrupt a store, so check with raise rather than assert.
        if self.points.ndim != 2:
            raise ValueError(f"points must be 2-d [n_points, n_features], got shape {self.points.shape}")
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            raise ValueError("offsets must be 1-d, non-empty and start at 0")
        if int(self.offsets[-1]) != len(self.points):
            raise ValueError(f"offsets end at {int(self.offsets[-1])} but there are {len(self.points)} points")
        if self.point_features and len(self.point_features) != self.points.shape[1]:
            raise ValueError(
                f"{len(self.point_features)} point feature names for {self.points.shape[1]} columns"
            )
        for name, values in self.fields.items():
            if len(values) != len(self):
                raise ValueError(f"cloud field {name!r} has {len(values)} values for {len(self)} clouds")

    # -- size --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def counts(self) -> np.ndarray:
        """Number of points of each cloud, int64 ``[n_clouds]``."""
        return np.diff(self.offsets)

    # -- selection ---------------------------------------------------------------------------
    def cloud(self, i: int) -> dict[str, np.ndarray]:
        """One cloud: ``{"points": [n, F], <field>: value, ...}``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"cloud index {i} out of range for {n} clouds")
        i %= n
        out: dict[str, np.ndarray] = {"points": self.points[self.offsets[i] : self.offsets[i + 1]]}
        out.update({k: v[i] for k, v in self.fields.items()})
        return out

    def slice(self, start: int, stop: int) -> "Clouds":
        """Clouds ``start:stop`` as views of this batch's buffers."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(stop, start)
        base = self.offsets[start]
        return Clouds(
            points=self.points[base : self.offsets[stop]],
            offsets=self.offsets[start : stop + 1] - base,
            fields={k: v[start:stop] for k, v in self.fields.items()},
            point_features=self.point_features,
        )

    def take(self, indices: np.ndarray | Iterable[int]) -> "Clouds":
        """Clouds at ``indices`` (any order, repeats allowed), gathered in one vectorised step."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"cloud indices out of range for {len(self)} clouds")
        starts = self.offsets[idx]
        counts = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        point_index = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
        return Clouds(
            points=self.points[point_index],
            offsets=offsets,
            fields={k: v[idx] for k, v in self.fields.items()},
            point_features=self.point_features,
        )

    @classmethod
    def concat(cls, parts: Iterable["Clouds"]) -> "Clouds":
        """Concatenate batches that share point features and field names."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        counts = np.concatenate([p.counts for p in parts])
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(
            points=np.concatenate([p.points for p in parts]),
            offsets=offsets,
            fields={k: np.concatenate([p.fields[k] for p in parts]) for k in first.fields},
            point_features=first.point_features,
        )

    # -- views ---------------------------------------------------------------------------------
    def padded(self, n: int | None = None) -> Padded:
        """Zero-padded ``[B, N, F]`` array with a mask.

        Args:
            n: the padded length; default the longest cloud. Clouds longer than ``n`` keep their
                first ``n`` points (for jets: the hardest, since points are stored by descending pT).
        """
        cloud, position = ragged_positions(self.offsets)
        longest = int(self.counts.max()) if len(self) else 0
        n = longest if n is None else int(n)
        keep = position < n
        points = np.zeros((len(self), n, self.points.shape[1]), dtype=self.points.dtype)
        mask = np.zeros((len(self), n), dtype=bool)
        points[cloud[keep], position[keep]] = self.points[keep]
        mask[cloud[keep], position[keep]] = True
        return Padded(points=points, mask=mask, fields=dict(self.fields), truncated=int((~keep).sum()))

    def to_awkward(self):
        """An awkward array of records ``{points: var * {feature...}, <field>...}``.

        Built from the buffers: the offsets and field arrays are shared, each point feature column
        is one strided-to-contiguous copy (the store keeps points row-major).
        """
        import awkward as ak

        names = self.point_features or tuple(f"f{j}" for j in range(self.points.shape[1]))
        columns = [ak.contents.NumpyArray(np.ascontiguousarray(self.points[:, j])) for j in range(len(names))]
        points = ak.contents.ListOffsetArray(
            ak.index.Index64(self.offsets),
            ak.contents.RecordArray(columns, list(names), length=self.num_points),
        )
        contents = [points] + [ak.contents.NumpyArray(v) for v in self.fields.values()]
        record = ak.contents.RecordArray(contents, ["points", *self.fields], length=len(self))
        return ak.Array(record)

    def to_arrow(self):
        """A ``pyarrow.Table``: one ``large_list<float32>`` column per point feature, sharing one
        offsets buffer, then one column per cloud field."""
        import pyarrow as pa

        names = self.point_features or tuple(f"f{j}" for j in range(self.points.shape[1]))
        offsets = pa.array(self.offsets, type=pa.int64())
        columns = {
            name: pa.LargeListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(self.points[:, j])))
            for j, name in enumerate(names)
        }
        columns.update({k: pa.array(v) for k, v in self.fields.items()})
        return pa.table(columns)

    def equals(self, other: "Clouds") -> bool:
        """True when both batches hold bit-identical buffers and the same names."""
        return (
            self.point_features == other.point_features
            and np.array_equal(self.offsets, other.offsets)
            and self.points.dtype == other.points.dtype
            and np.array_equal(self.points, other.points)
            and self.fields.keys() == other.fields.keys()
            and all(
                self.fields[k].dtype == other.fields[k].dtype and np.array_equal(self.fields[k], other.fields[k])
                for k in self.fields
            )
        )

