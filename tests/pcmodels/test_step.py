"""pcmodels.training.step: the EMA follows its documented update and lags the weights."""

from __future__ import annotations

import torch

from tests.pcmodels.test_conformance import params, toy_batch, toy_stepper


def test_ema_is_the_documented_average_of_the_per_step_weights():
    stepper = toy_stepper("epic-fm", 30)
    assert stepper.decay > 0.9
    start = params(stepper.method)
    expected = {k: v.clone().double() for k, v in start.items()}
    g = torch.Generator().manual_seed(2)
    for n in range(12):
        stepper.train_batch(toy_batch(16, g))
        live = params(stepper.method)
        decay = min(stepper.decay, (1.0 + n) / (10.0 + n))  # the warm-up rule of Stepper.optimise
        expected = {k: decay * expected[k] + (1 - decay) * live[k].double() for k in expected}
    ema = {f"{name}.{k}": v for name, named in stepper.ema.items() for k, v in named.items()}
    assert ema.keys() == expected.keys()
    for k in ema:
        torch.testing.assert_close(ema[k].double(), expected[k], rtol=1e-5, atol=1e-6)
    # it lags: strictly between the start and the live weights, not equal to either
    live = params(stepper.method)
    moved = [k for k in ema if not torch.equal(live[k], start[k])]
    assert moved
    for k in moved:
        assert not torch.equal(ema[k], live[k]) and not torch.equal(ema[k], start[k])
    # ema_weights() puts exactly these weights in place, and the live ones back afterwards
    with stepper.ema_weights() as method:
        inside = params(method)
        assert all(torch.equal(inside[k], ema[k]) for k in ema)
    after = params(stepper.method)
    assert all(torch.equal(after[k], live[k]) for k in live)


def _round_trip(tensors, meta):
    """Through the checkpoint files, as a resumed run reads them."""
    import json
    import tempfile
    from pathlib import Path

    from pcmodels.training.checkpoint import load_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory() as d:
        path = save_checkpoint(Path(d), meta["step"], tensors, json.loads(json.dumps(meta)))
        return load_checkpoint(path)


def test_a_restored_stepper_continues_as_if_never_stopped():
    """Weights, EMA, optimiser moments, schedule and step count all travel through a checkpoint:
    a stepper restored after 7 steps of 14 ends with the uninterrupted one's weights and EMA."""
    import pytest

    for model in ("epic-fm", "mdma"):
        g = torch.Generator().manual_seed(3)
        batches = [toy_batch(16, g) for _ in range(14)]
        whole = toy_stepper(model, 14)
        for b in batches:
            whole.train_batch(b)
        first = toy_stepper(model, 14)
        for b in batches[:7]:
            first.train_batch(b)
        tensors, meta = _round_trip(*first.state())
        assert meta["step"] == 7 and set(meta["ema_updates"].values()) >= {7}
        torch.manual_seed(123)  # another start: everything must come from the checkpoint
        second = toy_stepper(model, 14)
        second.load_state(tensors, meta)
        assert second.step == 7 and second.learning_rates() == first.learning_rates()
        for b in batches[7:]:
            second.train_batch(b)
        a, b = params(whole.method), params(second.method)
        for k in a:
            assert torch.equal(a[k], b[k]), (model, k)
        for n in whole.ema:
            for k in whole.ema[n]:
                assert torch.equal(whole.ema[n][k], second.ema[n][k]), (model, n, k)
        assert second.ema_updates == whole.ema_updates and second.step == 14
        with pytest.raises(KeyError):
            second.load_state({k: v for k, v in tensors.items() if not k.startswith("ema.")}, meta)


def test_the_learning_rate_warms_up_linearly_then_follows_the_cosine_or_stays():
    import math

    import pytest

    from pcmodels.training.step import lr_factor

    cos = lr_factor(4, 24, "cosine")
    assert [cos(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cos(4) == 1.0 and cos(14) == pytest.approx(0.5) and cos(24) == pytest.approx(0.0, abs=1e-12)
    assert cos(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)))
    assert cos(100) == pytest.approx(0.0, abs=1e-12)  # past the end: zero, not climbing again
    const = lr_factor(4, 24, "constant")
    assert [const(s) for s in (0, 3, 4, 20, 100)] == [0.25, 1.0, 1.0, 1.0, 1.0]
    none = lr_factor(0, 10, "cosine")
    assert none(0) == 1.0 and none(5) == pytest.approx(0.5)
    single = lr_factor(0, 0, "cosine")  # a run of no steps after warm-up does not divide by zero
    assert single(0) == 1.0


def test_optimisers_take_every_setting_of_their_section():
    from pcmodels.config import OptimConfig
    from pcmodels.training.step import build_optimizer

    w = [torch.nn.Parameter(torch.zeros(2))]
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        cfg = OptimConfig(name=name, lr=3e-4, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.01)
        opt = build_optimizer(cfg, w)
        group = opt.param_groups[0]
        assert type(opt) is cls
        assert (group["lr"], tuple(group["betas"]), group["eps"], group["weight_decay"]) == (3e-4, (0.5, 0.9), 1e-7, 0.01)


def test_learning_rates_are_named_per_module_and_follow_the_schedule():
    import pytest

    fm = toy_stepper("epic-fm", 40)
    lr = fm.configs["net"].lr
    warm = fm.configs["net"].warmup_steps
    assert fm.learning_rates() == {"lr": pytest.approx(lr / warm)}
    gan = toy_stepper("mdma", 40)
    assert set(gan.learning_rates()) == {"lr_generator", "lr_critic"}


def test_chunks_add_up_to_the_whole_batch_gradient_and_report_the_padding():
    """A capped step cuts the batch into chunks of at most max_points padded points; the shares
    weight each chunk's mean loss so that the accumulated gradient is the whole batch's."""
    import pytest

    from pcmodels.training.step import Context, step_generator

    g = torch.Generator().manual_seed(8)
    batch = toy_batch(24, g)
    grads = {}
    for cap in (None, 20):
        stepper = toy_stepper("epic-fm", 10)
        stepper.max_points = cap
        net = stepper.method.modules["net"]
        for p in net.parameters():
            p.grad = torch.full_like(p, 7.0)  # stale gradients: chunks() must clear them
        ctx = Context(stepper, 0, step_generator(0, 0))
        parts = list(ctx.chunks(batch, "net"))
        shares = [s for _, s in parts]
        for part, share in parts:
            m = part["mask"].unsqueeze(-1).float()
            out = net(part["points"], torch.full((len(m),), 0.3), part["mask"], part["cloud"])
            per_cloud = ((out**2) * m).sum((1, 2)) / m.sum((1, 2))
            (share * per_cloud.mean()).backward()
        grads[cap] = [p.grad.clone() for p in net.parameters()]
        assert sum(shares) == pytest.approx(1.0)
        if cap is None:
            assert len(parts) == 1
            n = int(batch["mask"].sum(1).max())
            assert ctx.padding == pytest.approx(1 - int(batch["mask"].sum()) / (24 * n))
        else:
            assert len(parts) > 1 and all(p["mask"].numel() <= cap or len(p["mask"]) == 1 for p, _ in parts)
            assert ctx.padding == pytest.approx(1 - int(batch["mask"].sum()) / sum(p["mask"].numel() for p, _ in parts))
            assert sorted(torch.cat([p["rows"] for p, _ in parts]).tolist()) == list(range(24))
    for a, b in zip(grads[None], grads[20]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_step_draws_from_its_seed_and_step_and_moves_the_weights():
    from pcmodels.training.step import Context, step_generator

    a, b = step_generator(3, 5), step_generator(3, 5)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=step_generator(3, 6)), torch.rand(4, generator=step_generator(4, 5)))
    stepper = toy_stepper("epic-fm", 10)
    ctx = Context(stepper, 5, step_generator(0, 5))
    assert (ctx.step, ctx.rank, ctx.world_size, ctx.padding) == (5, 0, 1, None)
    assert ctx.modules is stepper.wrapped and ctx.modules["net"] is stepper.method.modules["net"]
    before = params(stepper.method)
    g = torch.Generator().manual_seed(1)
    out = stepper.train_batch(toy_batch(16, g))
    assert stepper.step == 1 and set(out) >= {"loss"}
    after = params(stepper.method)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with ctx.autocast():  # CPU, no amp: float32 throughout
        assert (torch.ones(2) @ torch.ones(2)).dtype == torch.float32


def test_gradients_are_clipped_to_the_configured_norm():
    """Adam divides by the gradient's size, so a clip shows where the gradient falls far below
    eps: a norm clipped to 1e-12 moves the weights by a tiny fraction of the learning rate."""
    from dataclasses import replace

    g = torch.Generator().manual_seed(4)
    batch = toy_batch(16, g)
    moved = {}
    for clip in (None, 1e-12):
        stepper = toy_stepper("epic-fm", 10)
        stepper.configs["net"] = replace(stepper.configs["net"], grad_clip=clip)
        before = params(stepper.method)
        stepper.train_batch(batch)
        after = params(stepper.method)
        moved[clip] = max(float((after[k] - before[k]).abs().max()) for k in before)
    lr = stepper.configs["net"].lr / stepper.configs["net"].warmup_steps  # the first step's, in the warm-up
    assert moved[None] > 0.5 * lr and moved[1e-12] < 1e-3 * lr
