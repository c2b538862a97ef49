"""DeepTreeGAN (pcmodels/networks/deeptree.py, pcmodels/models/deeptree.py): the tree's levels,
generation independent of the batch, kept points and p_T sums, the per-level hinge loss and
feature matching, a score per critic level. The conformance suites run it through training too."""

from __future__ import annotations

import pytest
import torch

from pcdata.loaders import BoxCox, Compose, Standardize
from pcmodels.config import load_config
from pcmodels.errors import ConfigError
from pcmodels.methods.base import DataSpec
from pcmodels.methods.gan import GAN_LOSSES, level_matching, per_level_loss
from pcmodels.networks.deeptree import (DeepTreeCritic, DeepTreeGenerator, TreeCriticConfig, TreeGeneratorConfig,
                                        level_sizes)
from pcmodels.registry import get_model

JETS = ("etarel", "phirel", "ptrel")


def _method(role: str, data: DataSpec):
    torch.manual_seed(0)
    return get_model("deeptree").method(load_config(get_model("deeptree").config_path(role)), data)


def _jet_data(max_points: int = 30) -> DataSpec:
    return DataSpec(JETS, ("pt", "mass"), max_points, 20.0, (-3.0, -3.0, -3.0), (3.0, 3.0, 3.0))


def _jet_transforms() -> Compose:
    """Bound by hand: ptrel Box-Cox (lambda 0.2), then every feature standardised."""
    where = (("points", 0), ("points", 1), ("points", 2))
    return Compose([BoxCox(columns=("ptrel",), where=(("points", 2),), a=(0.2,), b=(0.0,)),
                    Standardize(columns=JETS, where=where, a=(0.0, 0.0, -3.0), b=(0.1, 0.1, 1.0))])


@pytest.mark.parametrize("role,branches,sizes", [
    ("top30", (2, 3, 5), (1, 2, 6, 30)),
    ("top150", (2, 3, 5, 5), (1, 2, 6, 30, 150)),
    ("tiny-showers", (2, 3, 6, 6, 6, 5), (1, 2, 6, 36, 216, 1296, 6480)),
])
def test_tree_levels_grow_by_the_configured_branching(role, branches, sizes):
    cfg = load_config(get_model("deeptree").config_path(role))
    assert tuple(cfg.network.branches) == branches and level_sizes(branches) == sizes
    features = 4 if "showers" in role else 3
    gen = DeepTreeGenerator(cfg.network.generator_config(DataSpec(tuple("abcd"[:features]), tuple(cfg.data.cond_fields),
                                                                  1, 1.0, (0.0,) * features, (1.0,) * features)))
    cond = torch.zeros(2, len(cfg.data.cond_fields) + 1)
    with torch.no_grad():
        tree = gen.tree(torch.randn(2, gen.latent), cond)
    assert [t.shape[1] for t in tree] == list(sizes)
    assert tree[-1].shape == (2, sizes[-1], features) and all(t.shape[2] == features for t in tree)
    # The shower tree covers every ds2 cell (45 x 16 x 9), so any hit count.
    if "showers" in role:
        assert sizes[-1] == 45 * 16 * 9


class _TakeAggregate(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.d = d

    def forward(self, x):
        return x[..., : self.d]


def test_every_node_hears_all_its_ancestors_and_no_other_node():
    """Node ``i`` of level ``l`` has ancestor ``i // (P_l / P_m)`` at level ``m``: with the GIN's FFN
    replaced by "return the aggregate", each node becomes ``x + (1 + eps) x + sum of its ancestors``."""
    c = TreeGeneratorConfig(features=1, cond=1, branches=(2, 3), widths=(1, 1), hidden=4, n_global=1)
    gen = DeepTreeGenerator(c)
    gen.message = torch.nn.ModuleList(_TakeAggregate(1) for _ in range(2))
    root = torch.tensor([[[1.0]]])
    level1 = torch.tensor([[[10.0], [20.0]]])
    level2 = torch.arange(6, dtype=torch.float32).view(1, 6, 1) * 100
    with torch.no_grad():
        out = gen._ancestors(1, [root, level1, level2], torch.zeros(1, 2))
    assert out[0].flatten().tolist() == [2.0]
    assert out[1].flatten().tolist() == [2 * 10 + 1, 2 * 20 + 1]
    parents = [10, 10, 10, 20, 20, 20]
    assert out[2].flatten().tolist() == [2 * 100 * i + 1 + parents[i] for i in range(6)]


def test_children_follow_their_parent_in_tree_order():
    """Child ``j`` of parent ``p`` is node ``p * b + j``: with the branching FFN silenced, every
    child is its parent (the residual) before the reduction."""
    c = TreeGeneratorConfig(features=2, cond=1, branches=(3,), widths=(2,), hidden=4, n_global=1)
    gen = DeepTreeGenerator(c)
    seen = []
    gen.branch = torch.nn.ModuleList([_Zero(6)])
    gen.reduce = torch.nn.ModuleList([_Record(seen)])
    gen.message = torch.nn.ModuleList([_Zero(2)])
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with torch.no_grad():
        gen.tree(z, torch.zeros(2, 1))
    children = seen[-1]
    assert children.shape == (2, 3, 2)
    assert torch.equal(children, z.unsqueeze(1).expand(2, 3, 2))


class _Zero(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x):
        return torch.zeros(*x.shape[:-1], self.width, dtype=x.dtype)


class _Record(torch.nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(x)
        return x


def test_generation_does_not_depend_on_the_batch():
    """The same root noise and condition give the same cloud alone or among 63 others (in training
    mode too: no statistic crosses clouds)."""
    data = _jet_data()
    method = _method("tiny", data)
    gen = method.modules["generator"]
    g = torch.Generator().manual_seed(3)
    z = torch.randn(64, gen.latent, generator=g)
    counts = torch.randint(1, 31, (64,), generator=g)
    mask = torch.arange(30).expand(64, 30) < counts.unsqueeze(1)
    cloud = torch.randn(64, 2, generator=g)
    cond = method.condition(cloud, mask)
    for train in (False, True):
        gen.train(train)
        with torch.no_grad():
            full = method._generate(gen, z, mask, cond)
            for i in (0, 17, 63):
                alone = method._generate(gen, z[i : i + 1], mask[i : i + 1], cond[i : i + 1])
                torch.testing.assert_close(alone[0], full[i], rtol=1e-5, atol=1e-5)
            # A second batch order gives the same clouds, row for row.
            perm = torch.randperm(64, generator=g)
            torch.testing.assert_close(method._generate(gen, z[perm], mask[perm], cond[perm]), full[perm],
                                       rtol=1e-5, atol=1e-5)


def test_kept_points_follow_the_multiplicity_and_pt_fractions_sum_to_one():
    data = _jet_data()
    transforms = _jet_transforms()
    method = _method("tiny", data)
    method.bind_transforms(transforms)
    counts = torch.tensor([1, 5, 17, 30])
    mask = torch.arange(30).expand(4, 30) < counts.unsqueeze(1)
    x = method.sample(mask, torch.randn(4, 2), generator=torch.Generator().manual_seed(1))
    assert x.shape == (4, 30, 3) and (x[~mask] == 0).all()
    phys = transforms.inverse({"points": x, "mask": mask})["points"]
    pt = phys[..., 2]
    assert (pt[~mask] == 0).all() and (pt[mask] >= 0).all()
    torch.testing.assert_close(pt.sum(1), torch.ones(4), rtol=0, atol=1e-5)
    # Without the renormalisation the sums are not one: the test measures the step, not chance.
    raw = _method("tiny", data)
    raw.bind_transforms(transforms)
    raw.pt_sum_one = False
    raw._transforms = None
    y = raw.sample(mask, torch.randn(4, 2), generator=torch.Generator().manual_seed(1))
    sums = transforms.inverse({"points": y, "mask": mask})["points"][..., 2].sum(1)
    assert (sums[1:] - 1).abs().min() > 1e-2


def test_renormalisation_is_left_out_without_a_ptrel_feature():
    data = DataSpec(("a", "b"), (), 8, 5.0, (-4.0, -4.0), (4.0, 4.0))
    method = _method("tiny", data)
    method.bind_transforms(_jet_transforms())
    assert method._transforms is None


def test_hinge_loss_is_taken_per_level_and_summed():
    hinge = GAN_LOSSES["hinge"]
    real = torch.tensor([[2.0, 0.5], [-1.0, 1.0]])
    fake = torch.tensor([[-2.0, 0.0], [0.5, -0.5]])
    # Level 0: real relu(1 - r) = (0, 2) -> 1, fake relu(1 + f) = (0, 1.5) -> 0.75.
    # Level 1: real (0.5, 0) -> 0.25, fake (1, 0.5) -> 0.75.
    assert float(per_level_loss(hinge, real, fake, True)) == pytest.approx(1.75 + 1.0)
    # Generator: -mean per level: 0.75 and 0.25.
    assert float(per_level_loss(hinge, None, fake, False)) == pytest.approx(1.0)
    # One column is the plain loss (MDMA's single score).
    assert float(per_level_loss(hinge, real[:, :1], fake[:, :1], True)) == pytest.approx(1.75)


def test_level_feature_matching_is_the_l1_of_standardised_means():
    real = [torch.tensor([[0.0, 10.0], [2.0, 30.0]]), torch.tensor([[1.0], [3.0]])]
    fake = [torch.tensor([[3.0, 20.0], [3.0, 20.0]]), torch.tensor([[2.0], [2.0]])]
    # Level 0: mean (1, 20), sd (1, 10): fake standardised means (2, 0) -> 1. Level 1: 0.
    assert float(level_matching(fake, real)) == pytest.approx(0.5)
    assert float(level_matching(real, real)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("nodes,widths", [((4, 1), (8, 4, 4)), ((30, 6, 1), (3, 10, 10, 10))])
def test_critic_scores_every_level_and_ignores_padding(nodes, widths):
    torch.manual_seed(0)
    critic = DeepTreeCritic(TreeCriticConfig(features=3, cond=2, nodes=nodes, widths=widths, heads=2, hidden=16,
                                             mean_points=10.0)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 30, 3, generator=g)
    mask = torch.arange(30).expand(5, 30) < torch.tensor([[3], [30], [12], [1], [20]])
    cond = torch.randn(5, 2, generator=g)
    scores, features = critic(x, mask, cond)
    assert scores.shape == (5, len(nodes) + 1) and len(features) == len(nodes) + 1
    garbage = x.masked_fill(~mask.unsqueeze(-1), 1e3)
    again, _ = critic(garbage, mask, cond)
    assert torch.equal(scores, again)
    # Each level has its own head: a change of one head's last layer moves that column only
    # (spectral norm ignores a rescaling, so the weights are perturbed).
    with torch.no_grad():
        w = critic.heads[-1].out.linears[-1].parametrizations.weight.original
        w.add_(torch.randn(w.shape, generator=g))
    moved, _ = critic(x, mask, cond)
    assert torch.equal(moved[:, :-1], scores[:, :-1]) and not torch.equal(moved[:, -1], scores[:, -1])


def test_a_tree_smaller_than_the_clouds_is_a_config_error():
    with pytest.raises(ConfigError, match="network.branches: the tree \\[2, 3, 5\\] makes 30 points"):
        _method("tiny", _jet_data(max_points=150))


def test_bad_network_sizes_name_their_key():
    from pcmodels.config import RunConfig

    d = load_config(get_model("deeptree").config_path("tiny")).to_dict()
    d["network"]["gen_widths"] = [8, 8]
    with pytest.raises(ConfigError, match="network.gen_widths: one per level"):
        RunConfig.from_dict(d)
    d["network"]["gen_widths"] = [8, 8, 8]
    d["network"]["critic_nodes"] = [4, 0]
    with pytest.raises(ConfigError, match="network.critic_nodes: must be >= 1"):
        RunConfig.from_dict(d)
