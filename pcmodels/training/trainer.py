"""The training loop: streams from a store through :class:`pcdata.loaders.PointCloudLoader`.

One process or several under ``torchrun`` (DistributedDataParallel; each rank streams its own
share of every epoch). Resumable: re-running on an existing run directory continues from the last
checkpoint with the loader's state, and every random draw of step ``k`` comes from a generator
seeded by ``(seed, k)``, so an interrupted run ends in the same weights as an uninterrupted one.

The loop is written against :class:`pcmodels.methods.Method` (one loss, one optimiser); GANs
(two optimisers) and flows plug in by providing their own ``step`` with the same checkpoint,
logging and data plumbing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdata import open_store
from pcdata._io import write_json_atomic
from pcdata.loaders import PointCloudLoader, Standardize

from ..conditioning import CloudFieldModel
from ..errors import ConfigError, RunError
from ..methods import METHODS
from ..networks import EPiCConfig, EPiCNetwork
from .checkpoint import flatten_optimizer, latest_checkpoint, load_checkpoint, save_checkpoint, unflatten_optimizer
from .config import TrainConfig
from .logs import RunLogger

__all__ = ["train", "build_network", "build_method", "TrainResult", "step_generator"]


def build_network(config: TrainConfig, features: int, cond: int) -> EPiCNetwork:
    return EPiCNetwork(EPiCConfig(features=features, cond=cond, hidden=config.hidden, latent=config.latent,
                                  layers=config.layers, time_dim=config.time_dim))


def build_method(config: TrainConfig):
    return METHODS[config.model]()


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator of every random draw of one step: a function of (seed, step) only."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) % (2**63))


def _lr_factor(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


@dataclass(frozen=True)
class TrainResult:
    run: Path
    steps: int
    final_loss: float
    val_loss: float | None
    clouds_per_second: float
    parameters: int


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier() -> None:
    if _world()[1] > 1:
        torch.distributed.barrier()


def _prepare_run(run: Path, store, config: TrainConfig, loader: PointCloudLoader, fieldmodel: CloudFieldModel) -> None:
    """Write (rank 0) or check the run's identity: config, store, transforms, field model."""
    from safetensors.torch import save_file

    info = {
        "store": str(store.path),
        "store_checksums": [f.checksum for f in store.fragments],
        "kind": store.kind,
        "coords": store.coords,
        "point_features": list(loader.point_features),
        "cond_fields": list(config.cond_fields),
        "store_attrs": store.meta.attrs,
        "point_feature_specs": [f.to_dict() for f in store.meta.point_features],
        "cloud_feature_specs": [f.to_dict() for f in store.meta.cloud_features if f.name in config.cond_fields],
        "transforms": loader.transforms.to_dict(),
        "fieldmodel": fieldmodel.meta(),
        "config": config.to_dict(),
    }
    saved = run / "run.json"
    if saved.exists():
        old = json.loads(saved.read_text())
        if old["config"] != info["config"]:
            diff = sorted(k for k in info["config"] if old["config"].get(k) != info["config"][k])
            raise RunError(f"{run}: was started with another configuration (differs in {', '.join(diff)}); "
                           "use a new --out to start a new run")
        if old["store_checksums"] != info["store_checksums"]:
            raise RunError(f"{run}: was started on another store or another version of it ({old['store']})")
        return
    if _world()[0] == 0:
        run.mkdir(parents=True, exist_ok=True)
        save_file(fieldmodel.tensors(), str(run / "fieldmodel.safetensors"))
        import yaml

        (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        write_json_atomic(saved, info)


def train(store_ref: str | Path, out: str | Path, config: TrainConfig, *, device: str = "cpu",
          progress: bool = True) -> TrainResult:
    """Train ``config.model`` on the train split of a store; resume if ``out`` holds a run.

    Args:
        store_ref: a store path or catalog reference (``name@version``).
        out: the run directory (created; or resumed when it holds a run of the same config and store).
        config: the resolved configuration.
        device: ``cpu`` or ``cuda`` (``cuda:N``); under torchrun each rank uses its LOCAL_RANK GPU.
        progress: show a progress bar (rank 0).

    Raises:
        ConfigError: a conditioning field the store lacks, or CUDA asked for without a GPU.
        RunError: ``out`` holds a run of another configuration or store.
    """
    rank, world = _world()
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is available on this machine")
        if world > 1:
            import os

            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
    store = open_store(store_ref)
    missing = [f for f in config.cond_fields if f not in store.cloud_features]
    if missing:
        raise ConfigError(f"{store.path}: no cloud field {missing[0]!r} to condition on (has {', '.join(store.cloud_features)})")
    run = Path(out)
    torch.manual_seed(config.seed)  # network initialisation
    loader = PointCloudLoader(
        store, split="train", batch_size=config.batch_size, shuffle=True, seed=config.seed,
        num_workers=config.num_workers, pad=config.pad, fields=config.cond_fields,
        transforms=[Standardize(list(store.point_features) + list(config.cond_fields))], drop_last=True,
    )
    if len(loader) == 0:
        raise ConfigError(f"{store.path}: the train split has fewer clouds than one batch per rank "
                          f"({config.batch_size} x {world}); lower --batch-size")
    train_idx = store.split_indices("train")
    counts = store.counts[train_idx]
    if config.pad != "batch":
        counts = np.minimum(counts, int(config.pad))
    fieldmodel = CloudFieldModel.fit({f: store.field(f)[train_idx] for f in config.cond_fields}, counts, seed=config.seed)
    _prepare_run(run, store, config, loader, fieldmodel)
    _barrier()

    net = build_network(config, len(loader.point_features), len(config.cond_fields)).to(dev)
    ema = [p.detach().clone() for p in net.parameters()]
    method = build_method(config)
    steps_per_epoch = len(loader)
    total = config.steps or config.epochs * steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config.warmup_steps, total))
    step = 0
    ckpt = latest_checkpoint(run)
    if ckpt is not None:
        tensors, meta = load_checkpoint(ckpt)
        net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        ema = [tensors[f"ema.{i}"].to(dev) for i in range(len(ema))]
        opt.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        sched.load_state_dict(meta["scheduler"])
        loader.load_state_dict(meta["loader"])
        step = int(meta["step"])
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = config.amp and dev.type == "cuda"
    params = list(net.parameters())
    logger = RunLogger(run, enabled=rank == 0)
    scale = config.feature_scale

    def save(val: float | None) -> None:
        if rank == 0:
            opt_t, opt_meta = flatten_optimizer(opt.state_dict())
            tensors = {**{f"model.{k}": v for k, v in net.state_dict().items()},
                       **{f"ema.{i}": p for i, p in enumerate(ema)}, **opt_t}
            save_checkpoint(run, step, tensors, {"step": step, "optimizer": opt_meta, "scheduler": sched.state_dict(),
                                                 "loader": loader.state_dict(), "val_loss": val})
        _barrier()

    bar = _Bar(progress and rank == 0, total, step)
    loss_value, val, seen, t_start = float("nan"), None, 0, time.perf_counter()
    with bar:
        while step < total:
            finished_epoch = True
            for batch in loader:
                x = batch["points"].to(dev, non_blocking=True) * scale
                mask = batch["mask"].to(dev, non_blocking=True)
                cond = batch["cloud"].to(dev, non_blocking=True) if config.cond_fields else None
                g = step_generator(config.seed + 7919 * rank, step, dev)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = method.loss(model, x, mask, cond, generator=g)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
                sched.step()
                with torch.no_grad():
                    # EMA warm-up: early on the average would be dominated by the random start.
                    decay = min(config.ema, (1.0 + step) / (10.0 + step))
                    torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - decay)
                step += 1
                seen += x.shape[0] * world
                loss_value = float(loss.detach())
                rate = seen / max(1e-9, time.perf_counter() - t_start)
                bar.update(step, loss_value, rate)
                if step % config.log_every == 0 or step == total:
                    logger.log(step, {"loss": loss_value, "lr": sched.get_last_lr()[0], "clouds_per_s": rate,
                                      "epoch": step / steps_per_epoch})
                if step % config.checkpoint_every == 0 or step == total:
                    save(val)
                if step >= total:
                    finished_epoch = step % steps_per_epoch == 0
                    break
            if finished_epoch:
                val = validation_loss(net, ema, method, store, config, dev, loader)
                logger.log(step, {"val_loss": val})
    logger.close()
    return TrainResult(run, step, loss_value, val, seen / max(1e-9, time.perf_counter() - t_start),
                       sum(p.numel() for p in params))


@torch.no_grad()
def validation_loss(net, ema, method, store, config: TrainConfig, dev, train_loader) -> float | None:
    """Mean loss of the EMA weights on the first ``val_batches`` batches of the val split (fixed
    noise: comparable across epochs and runs)."""
    if len(store.split_indices("val")) == 0:
        return None
    from pcdata.loaders import transform_from_dict

    loader = PointCloudLoader(store, split="val", batch_size=config.batch_size, shuffle=False, pad=config.pad,
                              fields=config.cond_fields, rank=0, world_size=1)
    transforms = transform_from_dict(train_loader.transforms.to_dict())
    live = [p.detach().clone() for p in net.parameters()]
    for p, e in zip(net.parameters(), ema):
        p.copy_(e)
    losses = []
    try:
        for i, batch in enumerate(loader):
            if i >= config.val_batches:
                break
            batch = transforms(batch)
            x = batch["points"].to(dev) * config.feature_scale
            cond = batch["cloud"].to(dev) if config.cond_fields else None
            g = step_generator(12345, i, dev)
            losses.append(float(method.loss(net, x, batch["mask"].to(dev), cond, generator=g)))
    finally:
        for p, v in zip(net.parameters(), live):
            p.copy_(v)
    return float(np.mean(losses)) if losses else None


class _Bar:
    """A rich progress bar with loss and clouds/s (or nothing, when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:,.0f} clouds/s"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 disable=not enabled)
        self.task = self.progress.add_task("train", total=total, completed=start, loss=float("nan"), rate=0.0)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, loss: float, rate: float) -> None:
        self.progress.update(self.task, completed=step, loss=loss, rate=rate)
