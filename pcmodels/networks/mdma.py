"""MDMA: mean-field attention networks (Käch & Melzer-Pellmann, arXiv 2305.15254 / 2408.04997).

Every cloud carries point tokens and one mean-field token, initialised as the sum of the embedded
real points divided by the dataset's mean multiplicity (a constant, not the cloud's own count).
In each :class:`MeanFieldBlock` the token attends to all points (cross-attention with the token as
the only query: cost linear in N), is concatenated with the multiplicity condition, and is
broadcast back into every point with a residual. There is no attention among the points.

The critic uses normalised linear layers (rows of unit norm, no bias: the reference's
``WeightNormalizedLinear``) and weight norm on its attention's input projection; the generator
plain linear layers. The critic also returns the token after its last block, the "mean field" the
generator matches early in training.

Conditioning: ``cond`` is ``[extra fields..., n / mean_n]``. The last entry enters every block's
token update; extra fields (for showers the log incident energy) gate the generator's embedded
points through a GLU, and the blocks' tokens when ``glu`` is on, and enter the critic's token
embedding. With no extra field this is the reference's jet model (cond_dim 1).

Departure from the reference code, on purpose: the initial token sums the embedded points with
the padding masked out. The reference sums the embedding of the zero padding too, which makes the
token depend on how far a batch is padded; the paper describes a sum over the cloud's points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["MDMAConfig", "NormalizedLinear", "MeanFieldBlock", "MDMAGenerator", "MDMACritic"]


@dataclass(frozen=True)
class MDMAConfig:
    """Sizes of one MDMA network.

    Attributes:
        features: point features (3 for jets).
        cond: conditioning scalars per cloud, the multiplicity ``n / mean_n`` last (>= 1).
        latent: width of the point tokens (``l_dim``; paper 16).
        hidden: width inside the blocks and of the attention (``hidden``; paper 48 generator, 64 critic).
        layers: number of blocks (paper 7 generator, 2 critic).
        heads: attention heads (paper 16); must divide ``hidden``.
        mean_points: the dataset's mean multiplicity (divides the token's initial sum).
        glu: gate the blocks' tokens with the extra conditions (the calorimeter configuration).
        dropout: attention dropout (critic).
    """

    features: int = 3
    cond: int = 1
    latent: int = 16
    hidden: int = 64
    layers: int = 2
    heads: int = 16
    mean_points: float = 1.0
    glu: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("features", "cond", "latent", "hidden", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"heads: {self.heads} heads must divide hidden = {self.hidden}")
        if self.glu and self.cond < 2:
            raise ValueError("glu: gating needs a condition besides the multiplicity")
        if self.mean_points <= 0:
            raise ValueError(f"mean_points: must be > 0, got {self.mean_points}")


class NormalizedLinear(nn.Module):
    """``x W^T / |W_row|``: a linear map whose rows have unit norm, no bias (the critic's layers)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) / (self.weight.pow(2).sum(1).sqrt() + 1e-8)


class MeanFieldBlock(nn.Module):
    """Points -> hidden; token -> hidden (shared weights), attends to the points, takes the
    multiplicity; back to every point (residual); token -> latent.

    The last block of a network leaves out the half whose output nothing reads (the critic's point
    update, the generator's token update): such weights would get no gradient, which DDP refuses.
    The reference builds them and never trains them.
    """

    def __init__(self, c: MDMAConfig, critic: bool, *, points_out: bool = True, token_out: bool = True):
        super().__init__()
        lin = NormalizedLinear if critic else nn.Linear
        self.fc0 = lin(c.latent, c.hidden)
        self.fc1 = lin(2 * c.hidden, c.latent) if points_out else None
        self.fc1_cls = lin(c.hidden + 1, c.hidden)
        self.fc2_cls = lin(c.hidden, c.latent) if token_out else None
        self.cond_cls = nn.Linear(c.cond - 1, c.hidden) if c.glu else None
        attn = nn.MultiheadAttention(c.hidden, c.heads, batch_first=True, dropout=c.dropout if critic else 0.0)
        self.attn = weight_norm(attn, "in_proj_weight") if critic else attn
        self.ln = nn.LayerNorm(c.hidden)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x, token, cond, padding):
        res = x
        x = self.fc0(self.act(x))
        token = self.ln(self.fc0(self.act(token)))
        token, _ = self.attn(token, x, x, key_padding_mask=padding, need_weights=False)
        token = self.fc1_cls(torch.cat([token, cond[:, None, -1:]], dim=-1))
        if self.cond_cls is not None:
            token = self.act(F.glu(torch.cat([token, self.cond_cls(cond[:, None, :-1])], dim=-1)))
        if self.fc1 is not None:
            x = self.fc1(torch.cat([x, token.expand(-1, x.shape[1], -1)], dim=-1)) + res
        return x, self.act(self.fc2_cls(token)) if self.fc2_cls is not None else token


def _initial_token(x: torch.Tensor, mask: torch.Tensor, mean_points: float) -> torch.Tensor:
    return (x * mask.unsqueeze(-1).to(x.dtype)).sum(1, keepdim=True) / mean_points


class MDMAGenerator(nn.Module):
    """Per-point noise ``z`` [B, N, F] -> points [B, N, F] (padding is the caller's to zero)."""

    def __init__(self, c: MDMAConfig):
        super().__init__()
        self.config = c
        self.embed = nn.Linear(c.features, c.latent)
        self.cond_embed = nn.Linear(c.cond - 1, c.latent) if c.cond > 1 else None
        self.blocks = nn.ModuleList(MeanFieldBlock(c, critic=False, token_out=k < c.layers - 1) for k in range(c.layers))
        self.out = nn.Linear(c.latent, c.features)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, z: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.act(self.embed(z))
        if self.cond_embed is not None:
            gate = self.cond_embed(cond[:, :-1]).unsqueeze(1).expand(-1, x.shape[1], -1)
            x = F.glu(torch.cat([x, gate], dim=-1))
        token = _initial_token(x, mask, self.config.mean_points)
        padding = ~mask
        for block in self.blocks:
            x, token = block(x, token, cond, padding)
        return self.out(self.act(x))


class MDMACritic(nn.Module):
    """Points [B, N, F] -> (score [B, 1], mean field [B, latent])."""

    def __init__(self, c: MDMAConfig):
        super().__init__()
        self.config = c
        self.embed = NormalizedLinear(c.features, c.latent)
        self.embed_cls = NormalizedLinear(c.latent + (c.cond if c.cond > 1 else 0), c.latent)
        self.blocks = nn.ModuleList(MeanFieldBlock(c, critic=True, points_out=k < c.layers - 1) for k in range(c.layers))
        self.fc1 = NormalizedLinear(c.latent + c.cond, c.hidden)
        self.fc2 = NormalizedLinear(c.hidden, c.latent)
        self.out = NormalizedLinear(c.latent, 1)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act(self.embed(x))
        token = _initial_token(x, mask, self.config.mean_points)
        if self.config.cond > 1:
            token = torch.cat([token, cond.unsqueeze(1)], dim=-1)
        token = self.act(self.embed_cls(token))
        padding = ~mask
        for block in self.blocks:
            x, token = block(x, token, cond, padding)
        field = token.squeeze(1)
        h = self.act(self.fc2(self.act(self.fc1(self.act(torch.cat([field, cond], dim=-1))))))
        return self.out(h), field
