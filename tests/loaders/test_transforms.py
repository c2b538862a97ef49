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


def test_each_transform_hands_on_the_statistics_of_its_output():
    """Bound in a chain, each transform tells the next the statistics of what it outputs (so that
    Standardize after Dequantize uses the noisy column's mean and spread without measuring)."""
    ctx = _ctx()
    Compose([Dequantize(["layer"]), Log(["energy"], offset=0.5), Log(["theta"], offset=-1.0)]).bind(ctx)
    assert ctx.stats["layer"] == FeatureStats(9, 20.5, (10.0**2 + 1 / 12) ** 0.5, 0.0, 45.0)
    assert ctx.stats["energy"] == FeatureStats(9, None, None, np.log(0.1 + 0.5), np.log(5.1 + 0.5))
    assert ctx.stats["theta"] == FeatureStats(6, None, None, None, np.log(2.0 - 1.0))  # log of 0: unknown
    # what Dequantize promises is what its output has: uniform noise adds 1/2 and 1/12
    layer = torch.randint(0, 45, (200_000,)).double()
    noisy = Dequantize(["layer"]).bind(BindContext(("layer",), (), {}))({"points": layer[:, None, None].expand(-1, 1, 1)},
                                                                       torch.Generator().manual_seed(0))["points"][:, 0, 0]
    assert float(noisy.mean()) == pytest.approx(float(layer.mean()) + 0.5, abs=0.01)
    assert float(noisy.std()) == pytest.approx((float(layer.std()) ** 2 + 1 / 12) ** 0.5, rel=2e-3)
    assert float(noisy.min()) >= float(layer.min()) and float(noisy.max()) < float(layer.max()) + 1


def test_missing_statistics_are_measured_on_the_sample_after_the_transforms_before():
    calls = []

    def sample():
        calls.append(1)
        return _batch(seed=5, b=200)

    ctx = BindContext(("layer", "energy"), ("e_in", "theta"), {}, sample=sample)
    bound = Compose([Dequantize(["layer"]), Standardize(["layer", "e_in"]), MinMax(["energy"])]).bind(ctx)
    assert calls == [1]  # one sample, carried along the chain
    raw = _batch(seed=5, b=200)
    noisy = bound.transforms[0](raw, torch.Generator().manual_seed(0))  # the sample's noise: seed = transforms applied
    layer = noisy["points"][..., 0][raw["mask"]].double()
    e_in = raw["cloud"][:, 0].double()
    assert bound.transforms[1].a == pytest.approx((float(layer.mean()), float(e_in.mean())), rel=1e-12)
    assert bound.transforms[1].b == pytest.approx((float(layer.std(unbiased=False)), float(e_in.std(unbiased=False))),
                                                  rel=1e-12)
    energy = raw["points"][..., 1][raw["mask"]].double()
    assert bound.transforms[2].a == pytest.approx((float(energy.min()),), rel=1e-12)
    assert ctx.stats["energy"].count == int(raw["mask"].sum())
    e = ctx.stats["e_in"]  # measured, then standardised: mean 0, std 1, the range mapped
    assert (e.count, e.mean, e.std) == (200, 0.0, 1.0)
    assert e.min == pytest.approx((float(e_in.min()) - float(e_in.mean())) / float(e_in.std(unbiased=False)))


def test_dequantize_draws_its_noise_in_the_data_dtype():
    bound = Dequantize(["layer"]).bind(_ctx())
    batch = {k: v.double() if v.is_floating_point() else v for k, v in _batch().items()}
    out = bound(batch, torch.Generator().manual_seed(3))
    u = torch.rand(batch["points"][..., :1].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = torch.where(batch["mask"], batch["points"][..., 0] + u[..., 0], torch.zeros((), dtype=torch.float64))
    assert torch.equal(out["points"][..., 0], want)


def test_compose_flattens_serialises_with_its_version_and_shows_its_parts():
    inner = Compose([Log(["energy"]), MinMax(["energy"])])
    c = Compose([inner, Standardize(["theta"])])
    assert len(c) == 3 and [type(t).__name__ for t in c.transforms] == ["Log", "MinMax", "Standardize"]
    assert repr(c).startswith("Compose([Log(") and "Standardize(" in repr(c)
    d = c.bind(_ctx()).to_dict()
    assert (d["type"], d["version"], [t["type"] for t in d["transforms"]]) == ("compose", 1, ["log", "minmax", "standardize"])


def test_inverse_keeps_each_value_as_numpy_or_torch_as_it_came():
    bound = Standardize(["energy", "e_in"]).bind(_ctx())
    x = {"points": np.ones((2, 3, 2), np.float32), "mask": np.ones((2, 3), bool), "cloud": torch.zeros(2, 2)}
    back = bound.inverse(x)
    assert isinstance(back["points"], np.ndarray) and isinstance(back["mask"], np.ndarray)
    assert isinstance(back["cloud"], torch.Tensor)
    assert float(back["cloud"][0, 0]) == pytest.approx(50.0)


def test_error_messages_name_what_there_is():
    from pcdata.loaders.transforms import Transform

    known = ", ".join(sorted(Transform.registry))
    assert "dequantize" in known and "standardize" in known
    with pytest.raises(ValueError, match=rf"^unknown transform type 'fourier' \(known: {known}\)$"):
        transform_from_dict({"type": "fourier"})
    with pytest.raises(KeyError, match=r"no column 'mass' \(point features: layer, energy; cloud fields: e_in, theta\)"):
        Standardize(["mass"]).bind(_ctx())
    with pytest.raises(ValueError, match=r"^Dequantize needs the integer columns, e\.g\. Dequantize\(\['layer', 'alpha', 'r'\]\)$"):
        Dequantize()
    with pytest.raises(ValueError, match=r"^Log needs the columns to take the log of, e\.g\. Log\(\['energy'\]\)$"):
        Log()
    with pytest.raises(ValueError, match=r"^no sample of the store to fit on$"):
        BindContext(("energy",), (), {}).batch()
    with pytest.raises(ValueError, match=r"^no statistics for 'energy' and no sample to measure them on$"):
        Standardize(["energy"]).bind(BindContext(("energy",), (), {}))


def test_minmax_and_standardize_parameters_and_the_statistics_they_hand_on():
    ctx = _ctx()
    ctx.stats["theta"] = FeatureStats(6, 1.0, 0.5, 3.0, 3.0)  # a constant column: range 0
    ctx.stats["e_in"] = FeatureStats(6, 50.0, 0.0, 0.0, 100.0)  # no spread
    mm = MinMax(["energy", "theta"]).bind(ctx)
    assert mm.a == (0.1, 3.0) and mm.b == pytest.approx((5.0, 1.0))
    e = ctx.stats["energy"]
    assert (e.count, e.mean, e.std, e.min, e.max) == pytest.approx((9, 2.4 / 5.0, 1.4 / 5.0, 0.0, 1.0))
    st = Standardize(["layer", "e_in"]).bind(ctx)
    assert st.a == (20.0, 50.0) and st.b == (10.0, 1.0)  # a zero spread divides by one
    assert ctx.stats["layer"] == FeatureStats(9, 0.0, 1.0, -2.0, 2.4)
    small = _ctx()
    small.stats["layer"] = FeatureStats(9, 20.0, 0.5, 0.0, 44.0)
    assert Standardize(["layer"]).bind(small).b == (0.5,)  # a spread below one is used as it is


@pytest.mark.parametrize("stats", [FeatureStats(9, 2.5, 1.4, None, 5.1), FeatureStats(9, 2.5, 1.4, 0.1, None),
                                   FeatureStats(9, None, 1.4, 0.1, 5.1), FeatureStats(9, 2.5, None, 0.1, 5.1)])
def test_a_statistic_that_is_not_known_is_measured(stats):
    """MinMax needs min and max, Standardize mean and std: any one unknown is measured on the sample."""
    raw = _batch(seed=5, b=200)
    energy = raw["points"][..., 1][raw["mask"]].double()
    ctx = _ctx()
    ctx.stats["energy"] = stats
    mm = MinMax(["energy"]).bind(ctx)
    ctx = _ctx()
    ctx.stats["energy"] = stats
    st = Standardize(["energy"]).bind(ctx)
    if stats.min is None or stats.max is None:
        assert mm.a == pytest.approx((float(energy.min()),)) and mm.b == pytest.approx((float(energy.max() - energy.min()),))
    else:
        assert mm.a == (0.1,) and mm.b == pytest.approx((5.0,))
    if stats.mean is None or stats.std is None:
        assert st.a == pytest.approx((float(energy.mean()),)) and st.b == pytest.approx((float(energy.std(unbiased=False)),))
    else:
        assert st.a == (2.5,) and st.b == (1.4,)


def test_statistics_of_an_empty_sample_are_unknown_and_log_of_zero_is_unknown():
    empty = lambda: {"points": torch.zeros(2, 3, 2), "mask": torch.zeros(2, 3, dtype=torch.bool),  # noqa: E731
                     "cloud": torch.zeros(0, 2)}
    ctx = BindContext(("layer", "energy"), ("e_in", "theta"), {}, sample=empty)
    assert ctx.stat("layer", "mean") == FeatureStats(0, None, None, None, None)
    assert ctx.stat("e_in", "min") == FeatureStats(0, None, None, None, None)
    ctx = _ctx()
    Log(["theta"]).bind(ctx)  # theta's minimum is 0: log(0) is no number
    assert ctx.stats["theta"] == FeatureStats(6, None, None, None, np.log(2.0))


def test_select_fields_binds_and_inverts_into_the_full_width():
    ctx = _ctx()
    with pytest.raises(KeyError, match=r"no cloud field 'mass' \(has e_in, theta\)"):
        SelectFields(["mass"]).bind(ctx)
    unbound = SelectFields(["theta"])
    assert unbound.to_dict() == {"type": "select_fields", "names": ["theta"], "index": None, "width": None}
    with pytest.raises(ValueError, match=r"^SelectFields is not bound: pass it to a loader or call bind\(\)$"):
        unbound({"cloud": torch.zeros(1, 2)})
    assert unbound.inverse({"cloud": torch.ones(1, 1)})["cloud"].shape == (1, 1)  # unbound: as it came
    bound = SelectFields(["theta"]).bind(ctx)
    assert ctx.cloud_features == ("theta",)
    cloud = torch.tensor([[7.0], [8.0]], dtype=torch.float64)
    back = bound.inverse({"cloud": cloud, "points": torch.zeros(2, 1, 2)})
    assert back["cloud"].dtype == torch.float64 and back["cloud"].shape == (2, 2)
    assert torch.isnan(back["cloud"][:, 0]).all() and torch.equal(back["cloud"][:, 1], cloud[:, 0])
    no_cloud = {"points": torch.zeros(1, 1, 2)}
    out = bound.inverse(no_cloud)
    assert out == no_cloud and out is not no_cloud
