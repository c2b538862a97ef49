import json

import numpy as np
import pytest
import torch

from pcdata.loaders import (Compose, Dequantize, Log, MinMax, PointCloudLoader, SelectFields, Standardize,
                            transform_from_dict)
from pcdata.loaders.transforms import BindContext
from pcdata.store import FeatureStats
from tests.loaders.conftest import collect


def _batch(seed=0, b=6, n=9):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n)[None, :] < torch.randint(1, n + 1, (b, 1), generator=g)
    points = torch.stack([torch.randint(0, 45, (b, n), generator=g).float(), torch.rand(b, n, generator=g) * 5 + 0.1], -1)
    return {"points": points * mask[..., None], "mask": mask, "cloud": torch.rand(b, 2, generator=g) * 100}


def _ctx():
    stats = {"layer": FeatureStats(9, 20.0, 10.0, 0.0, 44.0), "energy": FeatureStats(9, 2.5, 1.4, 0.1, 5.1),
             "e_in": FeatureStats(6, 50.0, 28.0, 0.0, 100.0), "theta": FeatureStats(6, 1.0, 0.5, 0.0, 2.0)}
    return BindContext(("layer", "energy"), ("e_in", "theta"), stats, sample=lambda: _batch(seed=5, b=200))


@pytest.mark.parametrize("transform", [
    Standardize(), MinMax(["energy", "e_in"]), Log(["energy"]), Log(["e_in"], offset=1.0),
    Compose([Log(["energy"]), MinMax(["energy", "layer"]), Standardize(["theta"])]),
])
def test_inverse_round_trips(transform):
    bound = transform.bind(_ctx())
    batch = _batch()
    out = bound(batch)
    assert torch.all(out["points"][~batch["mask"]] == 0)  # padding stays zero
    back = bound.inverse(out)
    torch.testing.assert_close(back["points"], batch["points"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back["cloud"], batch["cloud"], rtol=1e-5, atol=1e-4)
    assert torch.equal(batch["points"], _batch()["points"])  # the input was not modified


def test_standardize_and_minmax_use_the_store_statistics():
    ctx = _ctx()
    bound = Compose([Standardize(["layer"]), MinMax(["e_in"])]).bind(ctx)
    assert bound.transforms[0].a == (20.0,) and bound.transforms[0].b == (10.0,)
    assert bound.transforms[1].a == (0.0,) and bound.transforms[1].b == (100.0,)
    out = bound({"points": torch.tensor([[[40.0, 1.0]]]), "mask": torch.tensor([[True]]), "cloud": torch.tensor([[25.0, 0.0]])})
    assert out["points"][0, 0, 0] == 2.0 and out["cloud"][0, 0] == 0.25


def test_dequantize_adds_seeded_noise_and_floor_inverts_exactly():
    bound = Dequantize(["layer"]).bind(_ctx())
    batch = _batch()
    a = bound(batch, torch.Generator().manual_seed(1))
    b = bound(batch, torch.Generator().manual_seed(1))
    c = bound(batch, torch.Generator().manual_seed(2))
    assert torch.equal(a["points"], b["points"]) and not torch.equal(a["points"], c["points"])
    noise = (a["points"][..., 0] - batch["points"][..., 0])[batch["mask"]]
    assert noise.min() >= 0 and noise.max() < 1
    assert torch.equal(bound.inverse(a)["points"], batch["points"])


def test_serialised_transforms_give_the_same_results():
    bound = Compose([Dequantize(["layer"]), Log(["energy"], offset=0.5), Standardize(), SelectFields(["theta"])]).bind(_ctx())
    restored = transform_from_dict(json.loads(json.dumps(bound.to_dict())))
    batch = _batch()
    x, y = bound(batch, torch.Generator().manual_seed(0)), restored(batch, torch.Generator().manual_seed(0))
    for key in x:
        assert torch.equal(x[key], y[key])
    assert torch.equal(bound.inverse(x)["points"], restored.inverse(x)["points"])


def test_select_fields_picks_the_conditioning():
    ctx = _ctx()
    bound = Compose([SelectFields(["theta"]), Standardize(["theta"])]).bind(ctx)
    assert ctx.cloud_features == ("theta",)
    batch = _batch()
    out = bound(batch)
    assert out["cloud"].shape == (6, 1)
    back = bound.inverse(out)["cloud"]  # the store's columns again, NaN for the dropped one
    assert back.shape == (6, 2) and torch.isnan(back[:, 0]).all()
    torch.testing.assert_close(back[:, 1], batch["cloud"][:, 1])
    with pytest.raises(KeyError, match="no cloud field 'phi'"):
        SelectFields(["phi"]).bind(_ctx())


def test_inverse_takes_numpy_and_gives_numpy():
    bound = Standardize(["energy"]).bind(_ctx())
    x = {"points": np.ones((2, 3, 2), np.float32), "mask": np.ones((2, 3), bool)}
    back = bound.inverse(x)
    assert isinstance(back["points"], np.ndarray)
    np.testing.assert_allclose(back["points"][..., 1], 1.0 * 1.4 + 2.5, rtol=1e-6)


def test_mistakes_are_reported():
    with pytest.raises(ValueError, match="not bound"):
        Standardize()(_batch())
    with pytest.raises(ValueError, match="Log needs the columns"):
        Log()
    with pytest.raises(ValueError, match="no sample"):
        Compose([Log(["energy"]), Standardize(["energy"])]).bind(BindContext(("energy",), (), {}))
    with pytest.raises(KeyError, match="no column 'mass'"):
        Standardize(["mass"]).bind(_ctx())
    with pytest.raises(ValueError, match="unknown transform type"):
        transform_from_dict({"type": "fourier"})


def test_loader_transforms_normalise_and_invert(shower_store):
    transforms = [Dequantize(["layer", "alpha", "r"]), Log(["energy"]), Standardize(), SelectFields(["energy_in"])]
    loader = PointCloudLoader(shower_store, split=None, batch_size=50, seed=3, transforms=transforms, pad=300)
    assert loader.cloud_features == ("energy_in",)
    got = collect(loader)
    pts = np.concatenate([p[m] for p, m in zip(got["points"], got["mask"])])
    # log(energy) had no statistics in the store: they were measured on a sample.
    np.testing.assert_allclose(pts.mean(0), 0, atol=0.05)
    np.testing.assert_allclose(pts.std(0), 1, atol=0.05)
    loader.set_epoch(0)
    batch = next(iter(loader))
    raw = shower_store.take(batch["index"].numpy()).padded(300)
    back = loader.transforms.inverse(batch)
    np.testing.assert_array_equal(back["points"][..., :3].numpy(), raw.points[..., :3])  # floor undoes the noise
    np.testing.assert_allclose(back["points"][..., 3].numpy(), raw.points[..., 3], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(back["cloud"][:, 0].numpy(), shower_store.field("energy_in")[batch["index"].numpy()], rtol=1e-5)
    assert back["cloud"].shape[1] == 1  # the store has one cloud field, and it was selected
    # Saved with a model, restored elsewhere.
    restored = transform_from_dict(json.loads(json.dumps(loader.transforms.to_dict())))
    torch.testing.assert_close(restored.inverse(batch)["points"], back["points"])
    # The noise is named by (seed, epoch, batch): the same epoch gives the same batch again.
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader))["points"], batch["points"])


def test_dequantize_never_reaches_the_next_integer():
    # At large integers float32 spacing is coarse: 2**20 + u rounds up to 2**20 + 1 for u > 0.9375,
    # so an unclamped k + u would come back one cell higher from floor in ~3% of the draws.
    bound = Dequantize(["layer"]).bind(_ctx())
    k = float(2 ** 20)
    batch = {"points": torch.full((200, 50, 2), k), "mask": torch.ones(200, 50, dtype=torch.bool),
             "cloud": torch.zeros(200, 2)}
    out = bound(batch, torch.Generator().manual_seed(0))
    values = out["points"][..., 0]
    assert values.max() < k + 1 and values.min() >= k
    assert (values > k).float().mean() > 0.5  # the noise is really there
    assert torch.equal(bound.inverse(out)["points"][..., 0], batch["points"][..., 0])


@pytest.mark.slow
def test_dequantize_noise_is_the_same_for_any_workers_and_across_a_resume(shower_store):
    kw = dict(split=None, batch_size=40, seed=7, pad=400, transforms=[Dequantize(["layer", "alpha", "r"])])
    reference = collect(PointCloudLoader(shower_store, **kw))["points"]
    workers = PointCloudLoader(shower_store, num_workers=2, **kw)
    head = []
    for batch in workers:
        head.append(batch["points"].numpy())
        if len(head) == 4:
            break
    resumed = PointCloudLoader(shower_store, num_workers=2, **kw)
    resumed.load_state_dict(workers.state_dict())
    got = head + [b["points"].numpy() for b in resumed]
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        np.testing.assert_array_equal(a, b)  # bit for bit, noise included
    assert any((np.asarray(p) % 1 != 0).any() for p in reference)
