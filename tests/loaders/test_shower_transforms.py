"""The shower models' transforms: fitted on the training split, round trips, saved and restored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from pcdata import open_store
from pcdata.loaders import (BoxCox, CDFDequantize, Compose, EnergyFraction, Logit, MinMax, PointCloudLoader,
                            ShowerConditions, Standardize, transform_from_dict)
from pcdata.loaders.transforms import BindContext

FIELDS = ["incident_energy", "energy_sum", "num_points"]


def _loader(store, transforms, split="train", features=("layer", "r_bin", "energy"), **kw):
    return PointCloudLoader(store, split=split, batch_size=64, seed=3, features=list(features), fields=FIELDS,
                            transforms=transforms, **kw)


def _real(store, batch, features=("layer", "r_bin", "energy")):
    """The stored points and fields of a batch's clouds."""
    clouds = store.take(batch["index"].numpy())
    cols = [store.point_features.index(f) for f in features]
    return clouds.points[:, cols], np.stack([clouds.fields[f] for f in FIELDS], 1).astype(np.float64)


def _ctx(batch: dict, points, cloud=()) -> BindContext:
    return BindContext(tuple(points), tuple(cloud), {}, sample=lambda: batch)


def test_pointflow_pipeline_round_trips_cells_exactly_and_energies_closely(ds2_store):
    store = open_store(ds2_store)
    pipeline = [EnergyFraction("energy", "energy_sum"), MinMax(["energy"]), Logit(["energy"]), Standardize(["energy"]),
                CDFDequantize(["layer", "r_bin"]), ShowerConditions()]
    loader = _loader(store, pipeline)
    # Saved as JSON with a run and restored: the same numbers.
    restored = transform_from_dict(json.loads(json.dumps(loader.transforms.to_dict())))
    for i, batch in enumerate(loader):
        if i == 3:
            break
        mask = batch["mask"]
        assert torch.isfinite(batch["points"]).all() and torch.isfinite(batch["cloud"]).all()
        back = restored.inverse(batch)
        points, fields = _real(store, batch)
        got = back["points"][mask].numpy()
        assert np.array_equal(got[:, :2], points[:, :2])  # cells exactly
        np.testing.assert_allclose(got[:, 2], points[:, 2], rtol=1e-5)
        cloud = back["cloud"].numpy().astype(np.float64)
        assert np.array_equal(cloud[:, 2], fields[:, 2])  # hit counts exactly
        np.testing.assert_allclose(cloud[:, :2], fields[:, :2], rtol=1e-6)


def test_cdf_dequantize_makes_cells_gaussian_and_never_returns_an_empty_cell():
    rng = np.random.default_rng(0)
    # Cells 0..9 with 3 and 7 never seen, very unequal frequencies.
    p = np.array([0.3, 0.2, 0.1, 0, 0.15, 0.1, 0.05, 0, 0.06, 0.04])
    k = rng.choice(10, size=200_000, p=p).astype(np.float32)
    batch = {"points": torch.from_numpy(k).reshape(1000, 200, 1), "mask": torch.ones(1000, 200, dtype=torch.bool)}
    t = CDFDequantize(["cell"]).bind(_ctx(batch, ["cell"]))
    assert np.allclose(np.diff(t.edges[0]), p, atol=0.005)  # the empirical pmf
    y = t.forward(batch, torch.Generator().manual_seed(1))["points"].reshape(-1).double().numpy()
    # The marginal is a standard Gaussian (up to the tiny margin kept inside each cell).
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.02
    assert stats.kstest(y[::20], "norm").statistic < 0.02
    assert np.array_equal(t.inverse({"points": torch.from_numpy(y.astype(np.float32)).reshape(1000, 200, 1)})
                          ["points"].reshape(-1).numpy(), k)
    # Any generated value maps to a seen cell, the extremes included.
    anywhere = torch.linspace(-8, 8, 100_001).reshape(-1, 1, 1)
    cells = t.inverse({"points": anywhere})["points"].reshape(-1).numpy()
    assert set(np.unique(cells).tolist()) == {0, 1, 2, 4, 5, 6, 8, 9}
    assert cells[0] == 0 and cells[-1] == 9 and np.all(np.diff(cells) >= 0)  # monotone


def test_boxcox_fits_the_maximum_likelihood_exponent_and_never_gives_negative_energy():
    rng = np.random.default_rng(2)
    e = rng.lognormal(1.0, 1.5, size=(500, 40)).astype(np.float32)
    batch = {"points": torch.from_numpy(e)[..., None], "mask": torch.ones(500, 40, dtype=torch.bool)}
    t = BoxCox(["energy"]).bind(_ctx(batch, ["energy"]))
    assert t.a[0] == pytest.approx(stats.boxcox_normmax(e.reshape(-1).astype(np.float64), method="mle"), rel=1e-6)
    y = t.forward(batch)["points"]
    ref = stats.boxcox(e.reshape(-1).astype(np.float64), lmbda=t.a[0])
    np.testing.assert_allclose(y.reshape(-1).numpy(), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(t.inverse({**batch, "points": y})["points"].numpy(), e[..., None], rtol=1e-5)
    far = torch.tensor([-1e3, -50.0, 0.0, 3.0]).reshape(1, 4, 1)
    assert (t.inverse({"points": far, "mask": torch.ones(1, 4, dtype=torch.bool)})["points"] >= 0).all()


def test_logit_inverse_stays_in_the_unit_interval():
    x = torch.rand(1, 1000, 1, generator=torch.Generator().manual_seed(0))
    batch = {"points": x, "mask": torch.ones(1, 1000, dtype=torch.bool)}
    t = Logit(["v"]).bind(_ctx(batch, ["v"]))
    np.testing.assert_allclose(t.inverse({**batch, "points": t.forward(batch)["points"]})["points"], x, atol=1e-6)
    far = torch.tensor([-1e4, -30.0, 30.0, 1e4]).reshape(1, 4, 1)
    back = t.inverse({"points": far, "mask": torch.ones(1, 4, dtype=torch.bool)})["points"].reshape(-1)
    assert back.min() >= 0 and back.max() <= 1 and back[0] == 0 and back[-1] == 1


def test_energy_fractions_of_a_shower_sum_to_one(ds2_store):
    store = open_store(ds2_store)
    loader = _loader(store, [EnergyFraction("energy", "energy_sum")])
    batch = next(iter(loader))
    frac = (batch["points"][..., 2] * batch["mask"]).sum(1).double()
    np.testing.assert_allclose(frac.numpy(), 1.0, rtol=1e-5)


def test_shower_conditions_are_standardised_on_the_training_split(ds2_store):
    store = open_store(ds2_store)
    loader = _loader(store, [ShowerConditions()], shuffle=False)
    t = loader.transforms.transforms[0]
    train = store.split_indices("train")
    e = store.field("incident_energy")[train].astype(np.float64)
    ratio = np.log(store.field("energy_sum")[train] / e)
    # The sample the transforms fit on covers the train split (a few hundred showers: all of them).
    assert t.mean[0] == pytest.approx(np.log(e).mean(), rel=1e-6)  # the loader gives float32 fields
    assert t.mean[1] == pytest.approx(ratio.mean(), rel=1e-6) and t.std[1] == pytest.approx(ratio.std(), rel=1e-6)
    other = _loader(store, [ShowerConditions()], split="test").transforms.transforms[0]
    assert other.mean != t.mean  # another split fits other numbers: the fit really is per split
    cloud = torch.cat([b["cloud"] for b in loader]).double()
    assert cloud.mean(0).abs().max() < 0.05 and (cloud.std(0) - 1).abs().max() < 0.05


def test_a_bound_pipeline_binds_again_to_the_same_numbers(ds2_store):
    store = open_store(ds2_store)
    train = _loader(store, [EnergyFraction("energy", "energy_sum"), MinMax(["energy"]), Logit(["energy"]),
                            CDFDequantize(["layer", "r_bin"]), ShowerConditions()])
    val = _loader(store, train.transforms, split="val")
    assert isinstance(val.transforms, Compose)
    assert val.transforms.to_dict() == train.transforms.to_dict()
