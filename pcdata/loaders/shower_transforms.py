"""Transforms of the calorimeter shower models, fitted on a sample of the training split.

The store keeps exact integer cells and energies; the models see continuous, roughly Gaussian
features (seed-models.md §1, §3):

- :class:`Logit`: ``logit`` of a value in [0, 1] after an affine shrink (MDMA's logit
  dequantised cells, CaloPointFlow's energy fractions).
- :class:`BoxCox`: the Box-Cox power transform with the maximum-likelihood exponent (MDMA's energies).
- :class:`CDFDequantize`: an integer column mapped to a Gaussian through its empirical CDF, each
  value drawn inside its cell's probability mass (CaloPointFlow II's cells).
- :class:`EnergyFraction`: each hit's energy as a fraction of its shower's energy sum.
- :class:`ShowerConditions`: the shower-level variables CaloPointFlow II conditions on and models:
  ``log E_inc``, ``log(E_sum / E_inc)`` and ``log(n + u) - log sqrt(E_inc)``, each standardised.

Each is bound to its numbers once, before training, and saved with the run (``to_dict``); the
inverses bring generated values back to cells and MeV (energies never negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..store.format import FeatureStats
from .transforms import _UNKNOWN, BindContext, Transform, _ColumnMap, _numpy_safe

__all__ = ["Logit", "BoxCox", "CDFDequantize", "EnergyFraction", "ShowerConditions"]

#: Dequantisation noise stays this far inside a cell (a fraction of it), so that float32 values
#: still map back to their cell after the Gaussian quantile and its inverse.
_MARGIN = 0.02
#: The shrink before a quantile function: ``eps + (1 - 2 eps) u`` keeps it finite.
_SHRINK = 1e-6


def _values(ctx: BindContext, name: str) -> torch.Tensor:
    """Every sampled value of one column (real points only), float64."""
    batch = ctx.batch()
    kind, j = ctx.where(name)
    v = batch["points"][..., j][batch["mask"]] if kind == "points" else batch["cloud"][:, j]
    return v.double()


class Logit(_ColumnMap):
    """``logit(eps + (1 - 2 eps) x)`` of a column in [0, 1] (after :class:`MinMax`); the inverse
    is clamped back into [0, 1], so a generated value never leaves the training range.

    Args:
        columns: names (required).
        eps: the shrink (default 1e-6).
    """

    kind = "logit"

    def __init__(self, columns: Sequence[str] | None = None, eps: float = _SHRINK, **bound: Any):
        if columns is None and "a" not in bound:
            raise ValueError("Logit needs its columns, e.g. Logit(['energy'])")
        bound.setdefault("a", None if columns is None else tuple(float(eps) for _ in columns))
        bound.setdefault("b", bound["a"])
        super().__init__(columns=None if columns is None else tuple(columns), **bound)

    def _stat_after(self, s, a, b):
        def f(v):
            if v is None:
                return None
            x = a + (1 - 2 * a) * min(1.0, max(0.0, v))
            return math.log(x) - math.log1p(-x)

        return FeatureStats(s.count, None, None, f(s.min), f(s.max))

    def _f(self, x, a, b):
        x = a + (1 - 2 * a) * x.clamp(0.0, 1.0)
        return torch.log(x) - torch.log1p(-x)

    def _finv(self, y, a, b):
        return ((torch.sigmoid(y) - a) / (1 - 2 * a)).clamp(0.0, 1.0)


class BoxCox(_ColumnMap):
    """``(x^l - 1) / l`` (``log x`` for ``l = 0``) of a positive column, with the exponent ``l`` that
    makes the training sample most Gaussian (maximum likelihood, ``scipy.stats.boxcox_normmax``);
    the inverse is clamped at zero.

    Args:
        columns: names (required).
    """

    kind = "boxcox"

    def __init__(self, columns: Sequence[str] | None = None, **bound: Any):
        if columns is None and "a" not in bound:
            raise ValueError("BoxCox needs its columns, e.g. BoxCox(['energy'])")
        super().__init__(columns=None if columns is None else tuple(columns), **bound)

    def _params(self, ctx, names):
        from scipy.stats import boxcox_normmax

        lams = []
        for n in names:
            v = _values(ctx, n).numpy()
            v = v[v > 0]
            if len(v) < 2:
                raise ValueError(f"BoxCox: fewer than two positive values of {n!r} to fit on")
            if len(v) > 200_000:  # the fit converges long before; a fixed, even subsample
                v = v[np.linspace(0, len(v) - 1, 200_000).astype(np.int64)]
            lams.append(float(boxcox_normmax(v, method="mle")))
        return lams, [0.0] * len(names)

    def _stat_after(self, s, a, b):
        def f(v):
            if v is None or v <= 0:
                return None
            return math.log(v) if a == 0 else (v**a - 1) / a

        return FeatureStats(s.count, None, None, f(s.min), f(s.max))

    def _f(self, x, a, b):
        # expm1 / log1p forms: no cancellation near x = 1 in float32.
        log = torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))
        safe = torch.where(a == 0, torch.ones_like(a), a)
        return torch.where(a == 0, log, torch.expm1(a * log) / safe)

    def _finv(self, y, a, b):
        safe = torch.where(a == 0, torch.ones_like(a), a)
        inside = (a * y).clamp_min(-1.0)  # 1 + l y < 0 has no preimage: energy 0
        return torch.where(a == 0, torch.exp(y), torch.exp(torch.log1p(inside) / safe))


@dataclass(frozen=True)
class CDFDequantize(Transform):
    """Integer columns to standard Gaussians through their empirical distribution.

    A value ``k`` becomes ``u = F(k - 1) + p(k) v`` with ``v`` uniform (kept ``_MARGIN`` inside
    the cell), then ``Phi^-1(eps + (1 - 2 eps) u)``: the marginal becomes exactly Gaussian. The
    inverse finds the cell whose probability mass holds ``Phi(y)``, so it returns only cells seen
    in training. ``edges[c]`` are the cumulative probabilities ``0, F(0), ..., F(K - 1) = 1``.

    Args:
        columns: names (required).
    """

    columns: tuple[str, ...] | None = None
    where: tuple[tuple[str, int], ...] | None = None
    edges: tuple[tuple[float, ...], ...] | None = None
    kind: ClassVar[str] = "cdf_dequantize"

    def __init__(self, columns: Sequence[str] | None = None, where=None, edges=None):
        if columns is None:
            raise ValueError("CDFDequantize needs the integer columns, e.g. CDFDequantize(['layer', 'r_bin'])")
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "where", None if where is None else tuple((str(k), int(j)) for k, j in where))
        object.__setattr__(self, "edges", None if edges is None else tuple(tuple(map(float, e)) for e in edges))

    def bind(self, ctx: BindContext) -> "CDFDequantize":
        where = tuple(ctx.where(n) for n in self.columns)
        edges = self.edges
        if edges is None:
            edges = []
            for n in self.columns:
                v = _values(ctx, n).numpy()
                k = v.astype(np.int64)
                if len(v) == 0 or (k != v).any() or k.min() < 0:
                    raise ValueError(f"CDFDequantize: {n!r} must hold whole numbers >= 0")
                pmf = np.bincount(k) / len(k)
                edges.append(tuple(np.concatenate([[0.0], np.minimum(np.cumsum(pmf), 1.0)])[:-1].tolist() + [1.0]))
        lo, hi = _quantile(torch.tensor(0.0, dtype=torch.float64)).item(), _quantile(torch.tensor(1.0, dtype=torch.float64)).item()
        for n in self.columns:
            ctx.stats[n] = FeatureStats(ctx.stats.get(n, _UNKNOWN).count, 0.0, 1.0, lo, hi)
        return CDFDequantize(self.columns, where, edges)

    def _tables(self, device) -> list[torch.Tensor]:
        if self.edges is None or self.where is None:
            raise ValueError("CDFDequantize is not bound: pass it to a loader or call bind()")
        return [torch.tensor(e, dtype=torch.float64, device=device) for e in self.edges]

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        x = batch["points"]
        tables = self._tables(x.device)
        out = x.clone()
        v = torch.rand((*x.shape[:-1], len(tables)), generator=generator, dtype=torch.float64, device=x.device)
        v = _MARGIN + (1 - 2 * _MARGIN) * v
        for c, ((_, j), e) in enumerate(zip(self.where, tables)):
            k = x[..., j].to(torch.int64).clamp(0, len(e) - 2)
            u = e[k] + (e[k + 1] - e[k]) * v[..., c]
            out[..., j] = _quantile(u).to(x.dtype)
        mask = batch.get("mask")
        if mask is not None:
            out = torch.where(mask[..., None], out, torch.zeros((), dtype=out.dtype, device=out.device))
        return {**batch, "points": out}

    def inverse(self, batch: dict) -> dict:
        def run(bt):
            y = bt["points"]
            tables = self._tables(y.device)
            out = y.clone()
            for (_, j), e in zip(self.where, tables):
                u = _cdf(y[..., j].to(torch.float64)).clamp(0.0, 1.0)
                # The cell whose mass [F(k-1), F(k)) holds u: never an empty one (F(k-1) = F(k)).
                k = torch.searchsorted(e, u.contiguous(), right=True) - 1
                out[..., j] = k.clamp(0, len(e) - 2).to(y.dtype)
            mask = bt.get("mask")
            if mask is not None:
                out = torch.where(mask[..., None], out, torch.zeros((), dtype=out.dtype, device=out.device))
            return {**bt, "points": out}

        return _numpy_safe(batch, run)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "columns": list(self.columns or ()), "where": [list(w) for w in self.where or ()],
                "edges": [list(e) for e in self.edges or ()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Transform":
        return cls(d["columns"], d["where"], d["edges"])


def _quantile(u: torch.Tensor) -> torch.Tensor:
    """``Phi^-1`` after the shrink into (0, 1)."""
    s = _SHRINK + (1 - 2 * _SHRINK) * u
    return math.sqrt(2.0) * torch.erfinv(2 * s - 1)


def _cdf(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_quantile`."""
    s = 0.5 * (1 + torch.erf(y / math.sqrt(2.0)))
    return (s - _SHRINK) / (1 - 2 * _SHRINK)


@dataclass(frozen=True)
class EnergyFraction(Transform):
    """A point column divided by a cloud field (hit energy / shower energy sum); the inverse
    multiplies it back. Place it before any transform of the cloud field."""

    energy: str = "energy"
    total: str = "energy_sum"
    where: tuple[int, int] | None = None
    kind: ClassVar[str] = "energy_fraction"

    def bind(self, ctx: BindContext) -> "EnergyFraction":
        (pk, pj), (ck, cj) = ctx.where(self.energy), ctx.where(self.total)
        if pk != "points" or ck != "cloud":
            raise KeyError(f"EnergyFraction needs a point feature and a cloud field, got {self.energy!r}, {self.total!r}")
        ctx.stats[self.energy] = _UNKNOWN  # measured on the sample by the next transform
        return replace(self, where=(pj, cj))

    def _apply(self, batch: dict, inverse: bool) -> dict:
        if self.where is None:
            raise ValueError("EnergyFraction is not bound: pass it to a loader or call bind()")
        pj, cj = self.where
        x = batch["points"].clone()
        total = batch["cloud"][:, cj].to(x.dtype)[:, None]
        x[..., pj] = x[..., pj] * total if inverse else x[..., pj] / torch.where(total > 0, total, torch.ones_like(total))
        return {**batch, "points": x}

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        return self._apply(batch, False)

    def inverse(self, batch: dict) -> dict:
        return _numpy_safe(batch, lambda bt: self._apply(bt, True))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "energy": self.energy, "total": self.total,
                "where": None if self.where is None else list(self.where)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Transform":
        return cls(d["energy"], d["total"], None if d["where"] is None else tuple(d["where"]))


@dataclass(frozen=True)
class ShowerConditions(Transform):
    """The shower-level variables of CaloPointFlow II, in place of three cloud fields:

    - ``incident``: ``log E_inc``;
    - ``total``: ``log(E_sum / E_inc)``;
    - ``hits``: ``log(n + u) - log sqrt(E_inc)`` with ``u`` uniform (the count dequantised);

    each standardised with the mean and spread of the training sample. The inverse gives
    ``E_inc``, ``E_sum`` and ``n = floor(exp(.) sqrt(E_inc))`` (at least 1).
    """

    incident: str = "incident_energy"
    total: str = "energy_sum"
    hits: str = "num_points"
    where: tuple[int, int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    kind: ClassVar[str] = "shower_conditions"

    def bind(self, ctx: BindContext) -> "ShowerConditions":
        where = []
        for n in (self.incident, self.total, self.hits):
            k, j = ctx.where(n)
            if k != "cloud":
                raise KeyError(f"ShowerConditions: {n!r} must be a cloud field")
            where.append(j)
        mean, std = self.mean, self.std
        if mean is None:
            cloud = ctx.batch()["cloud"].double()
            raw = _ShowerVariables(tuple(where)).forward(cloud, torch.Generator().manual_seed(0))
            mean = tuple(float(v) for v in raw.mean(0))
            std = tuple(float(v) if v > 0 else 1.0 for v in raw.std(0, unbiased=False))
        for n in (self.incident, self.total, self.hits):
            ctx.stats[n] = FeatureStats(ctx.stats.get(n, _UNKNOWN).count, 0.0, 1.0, None, None)
        return replace(self, where=tuple(where), mean=mean, std=std)

    def _check(self) -> None:
        if self.where is None or self.mean is None:
            raise ValueError("ShowerConditions is not bound: pass it to a loader or call bind()")

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        self._check()
        cloud = batch["cloud"]
        raw = _ShowerVariables(self.where).forward(cloud.double(), generator)
        m, s = (torch.tensor(v, dtype=torch.float64, device=cloud.device) for v in (self.mean, self.std))
        out = cloud.clone()
        out[:, list(self.where)] = ((raw - m) / s).to(cloud.dtype)
        return {**batch, "cloud": out}

    def inverse(self, batch: dict) -> dict:
        def run(bt):
            cloud = bt["cloud"]
            m, s = (torch.tensor(v, dtype=torch.float64, device=cloud.device) for v in (self.mean, self.std))
            raw = cloud[:, list(self.where)].double() * s + m
            out = cloud.clone()
            out[:, list(self.where)] = _ShowerVariables(self.where).inverse(raw).to(cloud.dtype)
            return {**bt, "cloud": out}

        self._check()
        return _numpy_safe(batch, run)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "incident": self.incident, "total": self.total, "hits": self.hits,
                "where": None if self.where is None else list(self.where),
                "mean": None if self.mean is None else list(self.mean), "std": None if self.std is None else list(self.std)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Transform":
        t = lambda v: None if v is None else tuple(v)  # noqa: E731
        return cls(d["incident"], d["total"], d["hits"], t(d["where"]), t(d["mean"]), t(d["std"]))


@dataclass(frozen=True)
class _ShowerVariables:
    """The unstandardised variables (float64) of :class:`ShowerConditions` and their inverse."""

    where: tuple[int, int, int]

    def forward(self, cloud: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        i, t, h = self.where
        le = torch.log(cloud[:, i].clamp_min(1e-30))
        u = _MARGIN + (1 - 2 * _MARGIN) * torch.rand(cloud.shape[0], generator=generator, dtype=cloud.dtype,
                                                       device=cloud.device)
        return torch.stack([le, torch.log(cloud[:, t].clamp_min(1e-30)) - le,
                            torch.log(cloud[:, h] + u) - 0.5 * le], dim=1)

    def inverse(self, raw: torch.Tensor) -> torch.Tensor:
        le = raw[:, 0]
        n = torch.floor(torch.exp(raw[:, 2] + 0.5 * le)).clamp_min(1.0)
        return torch.stack([torch.exp(le), torch.exp(raw[:, 1] + le), n], dim=1)
