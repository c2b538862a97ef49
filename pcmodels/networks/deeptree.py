"""DeepTreeGAN: a tree generator and a tree critic (Scham et al., arXiv 2311.12616 / 2312.00042).

**Generator.** Each cloud grows from one latent root by fixed branching: level ``k`` has
``prod(branches[:k])`` nodes and every node gets ``branches[k]`` children, so the last level holds
``prod(branches)`` points (1 -> 2 -> 6 -> 30 -> 150 for JetNet150). At each level:

1. global features: an FFN per node, a sum over the level's nodes, an FFN with the condition
   (``n_global`` per cloud, the reference's ``DynHLVsLayer``);
2. branching: an FFN maps ``[parent, condition, globals]`` to ``branches[k]`` children at once
   (the reference's "mat" mode), the parent added to each child (residual), then a reduction FFN
   to the next level's width, applied to the whole tree (every earlier level too);
3. message passing from all ancestors: a GIN update ``x + FFN([(1 + eps) x + sum of ancestors,
   condition, globals])`` of every node of the tree.

With a fixed branching the tree is plain tensors: child ``j`` of parent ``p`` at level ``k`` is
node ``p * branches[k] + j`` of level ``k + 1`` and a node's ancestor ``m`` levels up is a
``repeat_interleave`` of the ancestors' level; no graph library is needed. The points are the last
level, in tree order; the caller keeps the first ``n``.

**Normalisation** (the departure that makes generation independent of the batch): the reference's
FFNs normalise hidden units with ``BatchNorm1d(affine=False, track_running_stats=False)``, i.e.
with the statistics of the generation batch, at inference too (it generates in batches of exactly
200). Here each hidden layer is normalised per node over its units (``LayerNorm`` without affine
parameters): no statistic crosses clouds, so a cloud depends on its own noise and condition only,
the same at batch 1 or 1,000, and 2-rank DDP equals one process on the union batch.

**Critic** (the v2 tree critic). The input level and ``len(nodes)`` pooled levels (150 -> 30 -> 6 ->
1): each pooling has learned seed vectors (``nodes[k]`` of them) that gather from all nodes of the
cloud through GATv2 attention with ``heads`` heads (concatenated), the padding masked out. Every
level is embedded (an FFN, then a :class:`CentralNodeUpdate` residual) and scored by its own head
(two central-node updates, pooling of count, sum, mean absolute deviation and max, an FFN with the
condition). Its FFNs carry spectral norm and no bias. Output: the scores ``[B, levels]`` and each
level's pooled features (for feature matching).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["TreeGeneratorConfig", "TreeCriticConfig", "FFN", "DeepTreeGenerator", "DeepTreeCritic",
           "CentralNodeUpdate", "level_sizes"]


def level_sizes(branches: tuple[int, ...]) -> tuple[int, ...]:
    """Nodes per level of the tree: ``(1, b0, b0 b1, ...)``."""
    sizes = [1]
    for b in branches:
        sizes.append(sizes[-1] * b)
    return tuple(sizes)


def _positive(obj, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        for x in (v if isinstance(v, tuple) else (v,)):
            if x < 1:
                raise ValueError(f"{name}: must be >= 1, got {v}")


@dataclass(frozen=True)
class TreeGeneratorConfig:
    """Sizes of the tree generator.

    Attributes:
        features: point features of the output (the last level's width; 3 for jets).
        cond: conditioning scalars per cloud, the multiplicity ``n / mean_n`` last.
        branches: children per node at each level (JetNet150 ``(2, 3, 5, 5)``).
        widths: node width at each level before the last (JetNet150 ``(64, 33, 20, 10)``);
            ``widths[0]`` is the root's latent size.
        hidden: FFN hidden width (the reference: 100).
        n_global: global features per cloud and level (10).
        use_fields: condition on the cloud fields too (the reference: on ``n`` only).
    """

    features: int = 3
    cond: int = 1
    branches: tuple[int, ...] = (2, 3, 5, 5)
    widths: tuple[int, ...] = (64, 33, 20, 10)
    hidden: int = 100
    n_global: int = 10
    use_fields: bool = False

    def __post_init__(self) -> None:
        _positive(self, "features", "cond", "branches", "widths", "hidden", "n_global")
        if not self.branches:
            raise ValueError("branches: needs at least one level")
        if len(self.widths) != len(self.branches):
            raise ValueError(f"widths: one per level before the last ({len(self.branches)} for branches "
                             f"{list(self.branches)}), got {list(self.widths)}")

    @property
    def points(self) -> int:
        return level_sizes(self.branches)[-1]


@dataclass(frozen=True)
class TreeCriticConfig:
    """Sizes of the tree critic.

    Attributes:
        features, cond: as the generator's.
        nodes: seed nodes of each pooled level (JetNet150 ``(30, 6, 1)``).
        widths: the input level's embedding width, then per head the width of each pooled level
            (the reference ``(3, 10, 10, 10)`` with 16 heads: pooled levels 160 wide).
        heads: attention heads of the pooling (concatenated).
        hidden: FFN hidden width (100).
        mean_points: the data's mean multiplicity (scales counts and sums of the input level).
    """

    features: int = 3
    cond: int = 1
    nodes: tuple[int, ...] = (30, 6, 1)
    widths: tuple[int, ...] = (3, 10, 10, 10)
    heads: int = 16
    hidden: int = 100
    mean_points: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "features", "cond", "nodes", "widths", "heads", "hidden")
        if len(self.widths) != len(self.nodes) + 1:
            raise ValueError(f"widths: one for the input level and one per pooled level ({len(self.nodes) + 1} for "
                             f"nodes {list(self.nodes)}), got {list(self.widths)}")
        if self.mean_points <= 0:
            raise ValueError(f"mean_points: must be > 0, got {self.mean_points}")

    def width(self, level: int) -> int:
        return self.widths[0] if level == 0 else self.widths[level] * self.heads


class FFN(nn.Module):
    """``layers`` linear maps without bias, LeakyReLU(0.1) between them (the reference's default
    FFN: 3 layers, hidden ``max(hidden, in, out)``); the generator normalises each hidden layer per
    node (``norm``), the critic's maps carry spectral norm (``spectral``)."""

    def __init__(self, n_in: int, n_out: int, hidden: int, *, norm: bool = False, spectral: bool = False,
                 layers: int = 3):
        super().__init__()
        h = max(hidden, n_in, n_out)
        dims = [n_in] + [h] * (layers - 1) + [n_out]
        wrap = spectral_norm if spectral else (lambda m: m)
        self.linears = nn.ModuleList(wrap(nn.Linear(a, b, bias=False)) for a, b in zip(dims[:-1], dims[1:]))
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < len(self.linears) - 1:
                if self.norm:
                    x = F.layer_norm(x, x.shape[-1:])
                x = F.leaky_relu(x, 0.1)
        return x


class DeepTreeGenerator(nn.Module):
    """Root noise ``z`` [B, widths[0]] -> the last level's points [B, prod(branches), features]."""

    def __init__(self, c: TreeGeneratorConfig):
        super().__init__()
        self.config = c
        self.latent = c.widths[0]
        dims = (*c.widths, c.features)
        cond = c.cond if c.use_fields else 1
        h, g = c.hidden, c.n_global
        levels = range(len(c.branches))
        self.global_node = nn.ModuleList(FFN(dims[k], h, h, norm=True) for k in levels)
        self.global_cloud = nn.ModuleList(FFN(h + cond, g, h, norm=True) for k in levels)
        self.branch = nn.ModuleList(FFN(dims[k] + cond + g, dims[k] * c.branches[k], h, norm=True) for k in levels)
        self.reduce = nn.ModuleList(FFN(dims[k], dims[k + 1], h, norm=True) for k in levels)
        self.message = nn.ModuleList(FFN(dims[k + 1] + cond + g, dims[k + 1], h, norm=True) for k in levels)
        self.eps = nn.Parameter(torch.zeros(len(c.branches)))  # GIN's learned self weight

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        """``mask`` is unused: the whole tree is made, the caller keeps the first ``n`` points."""
        return self.tree(z, cond)[-1]

    def tree(self, z: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
        """Every level of the tree, ``[B, nodes_k, width_k]`` (all in the last level's width)."""
        c = cond if self.config.use_fields else cond[:, -1:]
        tree = [z.unsqueeze(1)]
        for k, b in enumerate(self.config.branches):
            x = tree[-1]
            n_b, p, d = x.shape
            g = self.global_cloud[k](torch.cat([self.global_node[k](x).sum(1), c], dim=-1))
            ctx = torch.cat([c, g], dim=-1)
            children = self.branch[k](torch.cat([x, ctx.unsqueeze(1).expand(n_b, p, -1)], dim=-1))
            children = (children.view(n_b, p, b, d) + x.unsqueeze(2)).reshape(n_b, p * b, d)
            tree = [self.reduce[k](t) for t in (*tree, children)]
            tree = self._ancestors(k, tree, ctx)
        return tree

    def _ancestors(self, k: int, tree: list[torch.Tensor], ctx: torch.Tensor) -> list[torch.Tensor]:
        """One GIN update of every node from all its ancestors (simultaneous, with a skip)."""
        sizes = [t.shape[1] for t in tree]
        out = []
        for level, x in enumerate(tree):
            agg = (1.0 + self.eps[k]) * x
            for up in range(level):
                agg = agg + tree[up].repeat_interleave(sizes[level] // sizes[up], dim=1)
            out.append(x + self.message[k](torch.cat([agg, ctx.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)))
        return out


def _pool(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Per cloud: [count, sum, mean absolute deviation, max] over the real nodes (count and sum
    divided by ``scale``)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    count = m.sum(1).clamp_min(1.0)
    total = (x * m).sum(1)
    mean = total / count
    mad = ((x - mean.unsqueeze(1)).abs() * m).sum(1) / count
    peak = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    return torch.cat([count / scale, total / scale, mad, peak], dim=-1)


class CentralNodeUpdate(nn.Module):
    """Nodes -> latent (FFN) -> pooled [count, sum, MAD, max] -> global vector (FFN) -> back to
    every node with its own features -> out (FFN); added to the nodes (residual)."""

    def __init__(self, width: int, hidden: int, scale: float):
        super().__init__()
        self.scale = scale
        self.to_latent = FFN(width, width, hidden, spectral=True)
        self.to_global = FFN(1 + 3 * width, width, hidden, spectral=True)
        self.out = FFN(2 * width, width, hidden, spectral=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g = self.to_global(_pool(self.to_latent(x), mask, self.scale))
        upd = self.out(torch.cat([x, g.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1))
        return x + upd * mask.unsqueeze(-1).to(x.dtype)


class _BipartitePool(nn.Module):
    """``seeds`` learned nodes gather from all real nodes of the cloud: GATv2 attention
    ``a . LeakyReLU(W_s s + W_x x)`` per head, softmax over the nodes, messages ``V x``; heads concatenated."""

    def __init__(self, seeds: int, n_in: int, width: int, heads: int):
        super().__init__()
        self.heads, self.width = heads, width
        self.seeds = nn.Parameter(torch.randn(seeds, n_in))
        self.w_seed = spectral_norm(nn.Linear(n_in, heads * width, bias=False))
        self.w_node = spectral_norm(nn.Linear(n_in, heads * width, bias=False))
        self.value = spectral_norm(nn.Linear(n_in, heads * width, bias=False))
        self.att = nn.Parameter(torch.randn(heads, width) / math.sqrt(width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, w = self.heads, self.width
        s = self.w_seed(self.seeds).view(1, -1, 1, h, w)
        k = self.w_node(x).view(b, 1, n, h, w)
        logits = (F.leaky_relu(s + k, 0.2) * self.att).sum(-1)  # [B, S, N, H]
        logits = logits.masked_fill(~mask.view(b, 1, n, 1), float("-inf"))
        weights = torch.softmax(logits, dim=2)
        v = self.value(x).view(b, n, h, w)
        return torch.einsum("bsnh,bnhw->bshw", weights, v).reshape(b, -1, h * w)


class _Head(nn.Module):
    """A level's score: two central-node updates, pooling, an FFN with the condition."""

    def __init__(self, width: int, cond: int, hidden: int, scale: float):
        super().__init__()
        self.scale = scale
        self.updates = nn.ModuleList(CentralNodeUpdate(width, hidden, scale) for _ in range(2))
        self.out = FFN(1 + 3 * width + cond, 1, hidden, spectral=True)

    def forward(self, x, mask, cond):
        for u in self.updates:
            x = u(x, mask)
        pooled = _pool(x, mask, self.scale)
        return self.out(torch.cat([pooled, cond], dim=-1)), pooled


class DeepTreeCritic(nn.Module):
    """Points [B, N, F] -> (scores [B, 1 + len(nodes)], pooled features of every level)."""

    def __init__(self, c: TreeCriticConfig):
        super().__init__()
        self.config = c
        h, levels = c.hidden, len(c.nodes) + 1
        scales = [c.mean_points] + [float(s) for s in c.nodes]
        self.pools = nn.ModuleList(_BipartitePool(c.nodes[k], c.width(k), c.widths[k + 1], c.heads)
                                   for k in range(len(c.nodes)))
        self.embed = nn.ModuleList(FFN(c.features if k == 0 else c.width(k), c.width(k), h, spectral=True)
                                   for k in range(levels))
        self.embed_update = nn.ModuleList(CentralNodeUpdate(c.width(k), h, scales[k]) for k in range(levels))
        self.heads = nn.ModuleList(_Head(c.width(k), c.cond, h, scales[k]) for k in range(levels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x * mask.unsqueeze(-1).to(x.dtype)
        scores, features = [], []
        for k in range(len(self.heads)):
            if k > 0:
                x = self.pools[k - 1](x, mask)
                mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            x = self.embed_update[k](self.embed[k](x), mask)
            score, pooled = self.heads[k](x, mask, cond)
            scores.append(score)
            features.append(pooled)
        return torch.cat(scores, dim=-1), features
