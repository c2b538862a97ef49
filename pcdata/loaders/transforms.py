"""Invertible, serialisable batch transforms whose parameters come from the store's statistics.

A transform is declared with column names (``Standardize(["eta_rel", "pt_rel"])``) and *bound* to
a store by the loader: :meth:`Transform.bind` fills in the numbers (means, ranges...) and the
column positions. A bound transform maps batches forward (in the loader's workers) and back
(``inverse``, for generated samples), and ``to_dict``/:func:`transform_from_dict` save and restore
it with a trained model. Batches are dicts with ``points`` ``[B, N, F]``, ``mask`` ``[B, N]`` and
``cloud`` ``[B, C]``; padded entries stay zero. Names are looked up among the point features
first, then the cloud fields (a store keeps one statistics entry per name).

Where a transform needs statistics that an earlier transform made unknown (the mean of
``log(energy)``), binding measures them on a fixed sample of the store passed through the
transforms before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..store.format import FeatureStats

__all__ = ["BindContext", "Transform", "Standardize", "MinMax", "Log", "Dequantize", "SelectFields",
           "Compose", "transform_from_dict"]


_UNKNOWN = FeatureStats(0, None, None, None, None)


@dataclass
class BindContext:
    """The schema and statistics a transform is bound against (the output of the transforms before it).

    Attributes:
        point_features, cloud_features: column names of ``points`` and ``cloud``.
        stats: name -> :class:`~pcdata.store.FeatureStats` (None where unknown), the store's to begin with.
        sample: returns a raw batch (torch tensors) of a fixed sample of the store; called at most once.
        applied: bound transforms that precede (applied to the sample before measuring).
    """

    point_features: tuple[str, ...]
    cloud_features: tuple[str, ...]
    stats: dict[str, FeatureStats]
    sample: Callable[[], dict] | None = None
    applied: list["Transform"] = field(default_factory=list)
    _sample: tuple[int, dict] | None = None  # (transforms applied, the sample after them)

    def where(self, name: str) -> tuple[str, int]:
        if name in self.point_features:
            return "points", self.point_features.index(name)
        if name in self.cloud_features:
            return "cloud", self.cloud_features.index(name)
        raise KeyError(f"no column {name!r} (point features: {', '.join(self.point_features)}; "
                       f"cloud fields: {', '.join(self.cloud_features)})")

    def stat(self, name: str, *needed: str) -> FeatureStats:
        """Statistics of ``name``; measured on the sample if any of ``needed`` is unknown."""
        s = self.stats.get(name, _UNKNOWN)
        if all(getattr(s, k) is not None for k in needed):
            return s
        if self.sample is None:
            raise ValueError(f"no statistics for {name!r} and no sample to measure them on")
        batch = self.batch()
        kind, j = self.where(name)
        values = batch["points"][..., j][batch["mask"]] if kind == "points" else batch["cloud"][:, j]
        v = values.double()
        measured = (FeatureStats(len(v), float(v.mean()), float(v.std(unbiased=False)), float(v.min()), float(v.max()))
                    if len(v) else _UNKNOWN)
        self.stats[name] = measured
        return measured


    def batch(self) -> dict:
        """The fixed sample of the store (the training split's, for a model) after the transforms
        bound so far: what a transform fits its parameters on."""
        if self.sample is None:
            raise ValueError("no sample of the store to fit on")
        done, batch = self._sample if self._sample is not None else (0, self.sample())
        gen = torch.Generator().manual_seed(done)
        for t in self.applied[done:]:  # transforms never modify their input: no copy needed
            batch = t.forward(batch, gen)
        self._sample = (len(self.applied), batch)
        return batch


def _columns(names: Sequence[str] | None, ctx: BindContext) -> tuple[str, ...]:
    return tuple(names) if names is not None else (*ctx.point_features, *ctx.cloud_features)


class Transform:
    """Base class: ``forward`` and ``inverse`` on batch dicts, ``bind``, ``to_dict``."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type["Transform"]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            Transform.registry[cls.kind] = cls

    def bind(self, ctx: BindContext) -> "Transform":
        """A copy with parameters filled from ``ctx`` (may update ``ctx`` for the next transform)."""
        return self

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def inverse(self, batch: dict) -> dict:
        raise NotImplementedError

    def __call__(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        return self.forward(batch, generator)

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class _ColumnMap(Transform):
    """An elementwise map of named columns with per-column parameters ``a`` and ``b``."""

    columns: tuple[str, ...] | None = None
    where: tuple[tuple[str, int], ...] | None = None
    a: tuple[float, ...] | None = None
    b: tuple[float, ...] | None = None

    def _params(self, ctx: BindContext, names: tuple[str, ...]) -> tuple[list[float], list[float]]:
        raise NotImplementedError

    def _stat_after(self, s: FeatureStats, a: float, b: float) -> FeatureStats:
        raise NotImplementedError

    def bind(self, ctx: BindContext) -> "Transform":
        names = _columns(self.columns, ctx)
        where = tuple(ctx.where(n) for n in names)
        a, b = (self.a, self.b) if self.a is not None else self._params(ctx, names)
        for n, ai, bi in zip(names, a, b):
            ctx.stats[n] = self._stat_after(ctx.stats.get(n, _UNKNOWN), ai, bi)
        return replace(self, columns=names, where=where, a=tuple(map(float, a)), b=tuple(map(float, b)))

    def _f(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _finv(self, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _apply(self, batch: dict, fn) -> dict:
        if self.where is None:
            raise ValueError(f"{type(self).__name__} is not bound: pass it to a loader or call bind()")
        out = dict(batch)
        for kind in ("points", "cloud"):
            sel = [(i, j) for i, (k, j) in enumerate(self.where) if k == kind]
            if not sel or kind not in batch:
                continue
            x = batch[kind].clone()  # never modify the caller's tensors
            cols = [j for _, j in sel]
            a = torch.tensor([self.a[i] for i, _ in sel], dtype=x.dtype, device=x.device)
            b = torch.tensor([self.b[i] for i, _ in sel], dtype=x.dtype, device=x.device)
            y = fn(x[..., cols], a, b)
            if kind == "points" and batch.get("mask") is not None:
                y = torch.where(batch["mask"][..., None], y, torch.zeros((), dtype=y.dtype, device=y.device))
            x[..., cols] = y
            out[kind] = x
        return out

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        return self._apply(batch, self._f)

    def inverse(self, batch: dict) -> dict:
        return _numpy_safe(batch, lambda bt: self._apply(bt, self._finv))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "columns": list(self.columns or ()), "where": [list(w) for w in self.where or ()],
                "a": list(self.a or ()), "b": list(self.b or ())}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Transform":
        return cls(columns=tuple(d["columns"]), where=tuple((str(k), int(j)) for k, j in d["where"]),
                   a=tuple(d["a"]), b=tuple(d["b"]))


class Standardize(_ColumnMap):
    """``(x - mean) / std`` per column (``a`` = mean, ``b`` = std, from the store's statistics).

    Args:
        columns: names; default every point feature and cloud field.
    """

    kind = "standardize"

    def __init__(self, columns: Sequence[str] | None = None, **bound: Any):
        super().__init__(columns=None if columns is None else tuple(columns), **bound)

    def _params(self, ctx, names):
        stats = [ctx.stat(n, "mean", "std") for n in names]
        return [s.mean for s in stats], [s.std if s.std and s.std > 0 else 1.0 for s in stats]

    def _stat_after(self, s, a, b):
        f = lambda v: None if v is None else (v - a) / b  # noqa: E731
        return FeatureStats(s.count, 0.0, 1.0 if s.std else s.std, f(s.min), f(s.max))

    def _f(self, x, a, b):
        return (x - a) / b

    def _finv(self, y, a, b):
        return y * b + a


class MinMax(_ColumnMap):
    """``(x - min) / (max - min)`` per column, onto [0, 1] (``a`` = min, ``b`` = max - min).

    Args:
        columns: names; default every point feature and cloud field.
    """

    kind = "minmax"

    def __init__(self, columns: Sequence[str] | None = None, **bound: Any):
        super().__init__(columns=None if columns is None else tuple(columns), **bound)

    def _params(self, ctx, names):
        stats = [ctx.stat(n, "min", "max") for n in names]
        return [s.min for s in stats], [(s.max - s.min) or 1.0 for s in stats]

    def _stat_after(self, s, a, b):
        f = lambda v: None if v is None else (v - a) / b  # noqa: E731
        return FeatureStats(s.count, f(s.mean), None if s.std is None else s.std / b, f(s.min), f(s.max))

    def _f(self, x, a, b):
        return (x - a) / b

    def _finv(self, y, a, b):
        return y * b + a


class Log(_ColumnMap):
    """``log(x + offset)`` per column (energies, pT); inverse ``exp(y) - offset``.

    Args:
        columns: names (required).
        offset: added before the log, for columns that can be zero (default 0).
    """

    kind = "log"

    def __init__(self, columns: Sequence[str] | None = None, offset: float = 0.0, **bound: Any):
        if columns is None:
            raise ValueError("Log needs the columns to take the log of, e.g. Log(['energy'])")
        bound.setdefault("a", tuple(float(offset) for _ in columns))
        bound.setdefault("b", bound["a"])
        super().__init__(columns=tuple(columns), **bound)

    def _stat_after(self, s, a, b):
        f = lambda v: None if v is None or v + a <= 0 else math.log(v + a)  # noqa: E731
        return FeatureStats(s.count, None, None, f(s.min), f(s.max))  # log is monotone: the range carries over

    def _f(self, x, a, b):
        return torch.log(torch.clamp(x + a, min=torch.finfo(x.dtype).tiny))

    def _finv(self, y, a, b):
        return torch.exp(y) - a


class Dequantize(_ColumnMap):
    """Integer columns (calorimeter cell indices) plus uniform noise in [0, 1); inverse ``floor``.

    Each value lies in ``[k, k + 1)`` in its dtype (clamped below ``k + 1`` where rounding of
    ``k + u`` would reach it), so the inverse gives the integer back exactly, as
    :func:`pcdata.geometry.voxels.dequantise` does.

    The noise is drawn from the generator the loader seeds from (seed, epoch, batch), so a
    stream is reproducible and the same for any number of workers.

    Args:
        columns: names (required).
    """

    kind = "dequantize"

    def __init__(self, columns: Sequence[str] | None = None, **bound: Any):
        if columns is None:
            raise ValueError("Dequantize needs the integer columns, e.g. Dequantize(['layer', 'alpha', 'r'])")
        bound.setdefault("a", tuple(0.0 for _ in columns))  # pragma: no mutate (unused: floor and noise need none)
        bound.setdefault("b", bound["a"])
        super().__init__(columns=tuple(columns), **bound)

    def _stat_after(self, s, a, b):
        std = None if s.std is None else math.sqrt(s.std**2 + 1 / 12)
        return FeatureStats(s.count, None if s.mean is None else s.mean + 0.5, std, s.min,
                            None if s.max is None else s.max + 1)

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        def noisy(x, a, b):
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)  # pragma: no mutate (device: one here)
            # k + u rounds to k + 1 in float32 when u is within half an ulp of 1 (23 of 10 M
            # points at ds3 cell numbers): clamp below k + 1 so that floor gives k back.
            return torch.minimum(x + u, torch.nextafter(x + 1, x))

        return self._apply(batch, noisy)

    def _finv(self, y, a, b):
        return torch.floor(y)


@dataclass(frozen=True)
class SelectFields(Transform):
    """Keep these cloud fields in ``cloud``, in this order (the conditioning of a model).

    The inverse puts the selected fields back at their places among all the fields the
    transform saw, NaN for the ones it dropped, so that inverses before it in the pipeline see
    the columns they expect and the result has the store's columns.
    """

    names: tuple[str, ...] = ()
    index: tuple[int, ...] | None = None
    width: int | None = None
    kind: ClassVar[str] = "select_fields"

    def __init__(self, names: Sequence[str], index: Sequence[int] | None = None, width: int | None = None):
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "index", None if index is None else tuple(index))
        object.__setattr__(self, "width", width)

    def bind(self, ctx: BindContext) -> "Transform":
        missing = [n for n in self.names if n not in ctx.cloud_features]
        if missing:
            raise KeyError(f"no cloud field {missing[0]!r} (has {', '.join(ctx.cloud_features)})")
        index = tuple(ctx.cloud_features.index(n) for n in self.names)
        width = len(ctx.cloud_features)
        ctx.cloud_features = self.names
        return SelectFields(self.names, index, width)

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        if self.index is None:
            raise ValueError("SelectFields is not bound: pass it to a loader or call bind()")
        return {**batch, "cloud": batch["cloud"][:, list(self.index)]}

    def inverse(self, batch: dict) -> dict:
        def expand(bt):
            cloud = bt["cloud"]
            full = torch.full((cloud.shape[0], self.width), float("nan"), dtype=cloud.dtype, device=cloud.device)
            full[:, list(self.index)] = cloud
            return {**bt, "cloud": full}

        if "cloud" not in batch or self.width is None:
            return dict(batch)
        return _numpy_safe(batch, expand)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "names": list(self.names), "index": None if self.index is None else list(self.index),
                "width": self.width}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Transform":
        return cls(d["names"], d.get("index"), d.get("width"))


class Compose(Transform):
    """Transforms applied in order; the inverse applies their inverses in reverse order."""

    kind = "compose"

    def __init__(self, transforms: Sequence[Transform] = ()):
        flat: list[Transform] = []
        for t in transforms:
            flat.extend(t.transforms if isinstance(t, Compose) else [t])
        self.transforms = tuple(flat)

    def __repr__(self) -> str:
        return f"Compose({list(self.transforms)!r})"

    def __len__(self) -> int:
        return len(self.transforms)

    def bind(self, ctx: BindContext) -> "Compose":
        bound = []
        for t in self.transforms:
            bt = t.bind(ctx)
            ctx.applied.append(bt)
            bound.append(bt)
        return Compose(bound)

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        for t in self.transforms:
            batch = t.forward(batch, generator)
        return batch

    def inverse(self, batch: dict) -> dict:
        def run(bt):
            for t in reversed(self.transforms):
                bt = t.inverse(bt)
            return bt

        return _numpy_safe(batch, run)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "transforms": [t.to_dict() for t in self.transforms]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Compose":
        return cls([transform_from_dict(t) for t in d["transforms"]])


def transform_from_dict(d: Mapping[str, Any]) -> Transform:
    """Rebuild a bound transform saved with ``to_dict`` (e.g. beside a model checkpoint)."""
    kind = d.get("type")
    cls = Transform.registry.get(kind)
    if cls is None:
        raise ValueError(f"unknown transform type {kind!r} (known: {', '.join(sorted(Transform.registry))})")
    return cls.from_dict(d)


def _numpy_safe(batch: dict, fn: Callable[[dict], dict]) -> dict:
    """Run a torch function on a batch whose values may be numpy arrays; numpy in, numpy out."""
    numpy_keys = {k for k, v in batch.items() if isinstance(v, np.ndarray)}
    if not numpy_keys:
        return fn(batch)
    out = fn({k: torch.from_numpy(v) if k in numpy_keys else v for k, v in batch.items()})
    return {k: v.numpy() if k in numpy_keys and isinstance(v, torch.Tensor) else v for k, v in out.items()}
