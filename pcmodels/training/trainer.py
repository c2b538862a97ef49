"""The trainer: what every model's training shares, around the method's own step.

It streams batches of the train split through :class:`pcdata.loaders.PointCloudLoader` (each rank
its own share under torchrun), standardises point features and conditioning fields, fits the
conditioning model, owns the run folder through :class:`pcmodels.run.Run` (rank 0 writes, the
others only read), runs the method's steps with a :class:`~.step.Stepper` (DDP, EMA, optimisers,
schedules), logs what the step returns, validates as the method defines it at the end of each
epoch (and every ``validate_every`` steps, with a hook a sweep's pruner listens on), checkpoints
and resumes exactly: every random draw of step ``k`` comes from a generator seeded by
``(seed, k)``, so an interrupted run ends in the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pcdata import open_store
from pcdata.loaders import PointCloudLoader, Standardize

from ..conditioning import CloudFieldModel
from ..config import RunConfig
from ..errors import ConfigError, RunError, TrainingDiverged
from ..methods.base import DataSpec
from ..registry import get_model
from ..run import Run
from .checkpoint import remove_temporaries
from .distributed import Distributed
from .logs import RunLogger
from .step import Stepper

__all__ = ["train", "Trainer", "TrainResult", "data_loader", "data_spec"]


@dataclass(frozen=True)
class TrainResult:
    run: Path
    steps: int
    final: dict[str, float]
    validation: dict[str, float]
    clouds_per_second: float
    parameters: int
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def data_loader(store, config: RunConfig, *, split: str = "train", rank: int | None = None,
                world_size: int | None = None, shuffle: bool = True, transforms=None) -> PointCloudLoader:
    """The loader a run of ``config`` trains from: the model's features and transforms
    (:mod:`pcmodels.data`), bound to a sample of ``split``, or the already bound ``transforms``
    (the training loader's, for validation)."""
    d = config.data
    plan = get_model(config.model).plan(config, store)
    return PointCloudLoader(store, split=split, batch_size=d.batch_size, shuffle=shuffle, seed=config.train.seed,
                            num_workers=d.num_workers if split == "train" else 0, pad=d.pad, fields=d.cond_fields,
                            features=plan.features, transforms=transforms if transforms is not None else list(plan.transforms),
                            drop_last=split == "train", rank=rank, world_size=world_size,
                            bucket=d.bucket if shuffle else None)


def data_spec(store, loader: PointCloudLoader, config: RunConfig) -> tuple[DataSpec, np.ndarray]:
    """The data's description for the method, and the training multiplicities (after truncation)."""
    train_idx = store.split_indices("train")
    counts = store.counts[train_idx]
    if config.data.pad != "batch":
        counts = np.minimum(counts, int(config.data.pad))
    names = list(loader.point_features)
    if all(isinstance(t, Standardize) for t in loader.transforms.transforms):
        # The training range of each feature in the transformed space (the transforms are monotone).
        lo = [store.stats[n].min for n in names]
        hi = [store.stats[n].max for n in names]
        edge = torch.tensor([lo, hi], dtype=torch.float32).unsqueeze(0)
        fwd = loader.transforms({"points": edge, "mask": torch.ones(1, 2, dtype=torch.bool),
                                 "cloud": torch.zeros(1, len(config.data.cond_fields))})["points"][0]
        lower, upper = fwd[0].tolist(), fwd[1].tolist()
    else:
        # Fitted transforms (noise, CDFs): the range of the transformed training sample.
        raw = loader._source.sample()
        batch = loader.transforms(raw, torch.Generator().manual_seed(0))
        pts = batch["points"][batch["mask"]]
        lower, upper = pts.min(0).values.tolist(), pts.max(0).values.tolist()
    spec = DataSpec(tuple(names), tuple(config.data.cond_fields), int(counts.max(initial=1)), float(counts.mean()),
                    tuple(float(v) for v in lower), tuple(float(v) for v in upper))
    return spec, counts


class Trainer:
    """One training run of ``config`` on a store; :meth:`fit` trains (or resumes) to the end.

    Args:
        store_ref: a store path or catalog reference (``name@version``).
        out: the run folder (created; or resumed when it holds a run of the same config and store).
        config: the resolved configuration.
        device: ``cpu`` or ``cuda``; under torchrun each rank uses its ``LOCAL_RANK`` GPU.
        progress: show a progress bar (rank 0).
        validate_every: also validate every this many steps (and at the last one), not only at
            the end of each epoch; validation draws no training randomness, so the weights are
            the same either way (and it is not part of the run's configuration).
        on_validation: ``(step, validation, final) -> None``, called after each validation once
            its checkpoint is saved (the hook of a sweep's pruner; ``final`` is true for the
            validation of the last step, when stopping saves nothing); an exception it raises stops
            training and propagates, the run resumable from that checkpoint. Under torchrun it
            runs on every rank and must decide alike on all.

    Raises:
        ConfigError: a conditioning field the store lacks, a train split smaller than a batch, or
            CUDA asked for without a GPU.
        RunError: ``out`` holds a run of another configuration, store or world size.
    """

    def __init__(self, store_ref: str | Path, out: str | Path, config: RunConfig, *, device: str = "cpu",
                 progress: bool = True, validate_every: int | None = None,
                 on_validation: Callable[[int, dict[str, float], bool], None] | None = None):
        if validate_every is not None and validate_every < 1:
            raise ConfigError(f"validate_every must be >= 1, got {validate_every}")
        self.config, self.progress = config, progress
        self.validate_every, self.on_validation = validate_every, on_validation
        self.dist = Distributed.setup(device)
        try:
            self._prepare(store_ref, Path(out))
        except BaseException:
            self.dist.close()
            raise

    def _prepare(self, store_ref, out: Path) -> None:
        config, dist = self.config, self.dist
        spec = get_model(config.model)
        store = self.store = open_store(store_ref)
        if store.kind not in spec.kinds:
            raise ConfigError(f"{store.path}: a store of {store.kind}; {spec.name} learns {', '.join(spec.kinds)}")
        missing = [f for f in config.data.cond_fields if f not in store.cloud_features]
        if missing:
            raise ConfigError(f"{store.path}: no cloud field {missing[0]!r} to condition on "
                              f"(has {', '.join(store.cloud_features)})")
        self.loader = data_loader(store, config)
        if len(self.loader) == 0:
            raise ConfigError(f"{store.path}: the train split has fewer clouds than one batch per rank "
                              f"({config.data.batch_size} x {dist.world_size}); lower --batch-size")
        plan = spec.plan(config, store)
        self.data, counts = data_spec(store, self.loader, config)
        train_idx = store.split_indices("train")
        fieldmodel = CloudFieldModel.fit({f: store.field(f)[train_idx] for f in config.data.cond_fields}, counts,
                                         seed=config.train.seed)
        info = {"model": config.model, "config": config.to_dict(), "data": self.data.to_dict(),
                "store": {"path": str(store.path), "checksums": [f.checksum for f in store.fragments],
                          "kind": store.kind, "coords": store.coords, "attrs": store.meta.attrs,
                          "point_feature_specs": [f.to_dict() for f in store.meta.point_features],
                          "cloud_feature_specs": [f.to_dict() for f in store.meta.cloud_features
                                                  if plan.finish is not None or f.name in config.data.cond_fields]},
                "transforms": self.loader.transforms.to_dict(), "plan": plan.describe(), "fieldmodel": fieldmodel.meta(),
                "world_size": dist.world_size}
        torch.manual_seed(config.train.seed)  # network initialisation, the same on every rank
        self.method = spec.method(config, self.data).to(dist.device)
        self.method.bind_transforms(self.loader.transforms)
        if config.data.max_points is not None and not self.method.chunked:
            raise ConfigError(f"data.max_points: {spec.name} does not cut batches into chunks; leave it unset "
                              "(bound its memory with data.batch_size and data.bucket)")
        # Rank 0 alone decides and writes; every rank then reads the same folder and checks it.
        if dist.is_main and not Run.exists(out):
            Run.create(out, info, fieldmodel)
        dist.barrier()
        self.run = Run.open(out)
        self._check_same(self.run, info)
        if dist.is_main:
            remove_temporaries(self.run.path)
        self.steps_per_epoch = len(self.loader)
        self.total = config.train.steps or config.train.epochs * self.steps_per_epoch
        self.stepper = Stepper(self.method, config.optim, total_steps=self.total, seed=config.train.seed,
                               ema=config.train.ema, device=dist.device, rank=dist.rank, world_size=dist.world_size,
                               amp=config.train.amp, max_points=config.data.max_points)
        self.validation: dict[str, float] = {}
        ckpt = self.run.latest_checkpoint()
        if ckpt is not None:
            tensors, meta = self.run.load_checkpoint(ckpt)
            if meta["step"] > self.total:
                raise RunError(f"{ckpt / 'meta.json'}: step {meta['step']} is past the end of this run "
                               f"({self.total} steps); the checkpoint was edited or belongs to another run")
            try:
                self.stepper.load_state({k: v.to(dist.device) for k, v in tensors.items()}, meta)
                self.loader.load_state_dict(meta["loader"])
            except (KeyError, RuntimeError, ValueError) as err:
                raise RunError(f"{ckpt}: checkpoint does not fit this run ({str(err).splitlines()[0]})") from err
            self.validation = meta.get("validation") or {}

    @staticmethod
    def _check_same(run: Run, info: dict) -> None:
        old = run.info
        if old["config"] != info["config"]:
            diff = _differing(old["config"], info["config"])
            raise RunError(f"{run.path}: was started with another configuration (differs in {', '.join(diff)}); "
                           "use a new --out to start a new run")
        if old["store"]["checksums"] != info["store"]["checksums"]:
            raise RunError(f"{run.path}: was started on another store or another version of it ({old['store']['path']})")
        if old["world_size"] != info["world_size"]:
            raise RunError(f"{run.path}: was started on {old['world_size']} processes; resume it on as many "
                           f"(now {info['world_size']})")

    # -- the loop ----------------------------------------------------------------------------------
    def save(self) -> None:
        if self.dist.is_main:
            tensors, meta = self.stepper.state()
            self.run.save_checkpoint(self.stepper.step, tensors, {**meta, "loader": self.loader.state_dict(),
                                                                   "validation": self.validation})
        self.dist.barrier()

    def validate(self) -> dict[str, float]:
        """The method's validation on the first ``val_batches`` batches of the val split (EMA weights)."""
        store, config = self.store, self.config
        if config.train.val_batches == 0 or len(store.split_indices("val")) == 0:
            return {}
        # Every rank validates on the whole head of the val split, with the training loader's
        # transforms (fitted on the train split).
        loader = data_loader(store, config, split="val", rank=0, world_size=1, shuffle=False,
                             transforms=self.loader.transforms)

        def batches():
            for i, batch in enumerate(loader):
                if i >= config.train.val_batches:
                    return
                yield {k: v.to(self.dist.device) for k, v in batch.items()}

        with torch.no_grad(), self.stepper.ema_weights() as method:
            return method.validate(batches())

    def fit(self) -> TrainResult:
        """Train to the configured length (from the last checkpoint, if any)."""
        try:
            return self._fit()
        finally:
            self.dist.close()

    def _fit(self) -> TrainResult:
        stepper, dist, config = self.stepper, self.dist, self.config
        logger = RunLogger(self.run.path, enabled=dist.is_main)
        bar = _Bar(self.progress and dist.is_main, self.total, stepper.step)
        scalars: dict[str, float] = {}
        seen, t_start = 0, time.perf_counter()
        budget = config.train.max_minutes * 60 if config.train.max_minutes else math.inf
        out_of_time = False
        try:
            with bar:
                while stepper.step < self.total and not out_of_time:
                    finished_epoch = True
                    for batch in self.loader:
                        scalars = self._step(batch)
                        seen += batch["points"].shape[0] * dist.world_size
                        step, rate = stepper.step, seen / max(1e-9, time.perf_counter() - t_start)
                        bar.update(step, scalars, rate)
                        # Every rank stops at the same step: rank 0's clock decides.
                        out_of_time = self._broadcast_flag(time.perf_counter() - t_start >= budget)
                        last = step >= self.total or out_of_time
                        if step % config.train.log_every == 0 or last:
                            logger.log(step, {**scalars, **stepper.learning_rates(), "clouds_per_s": rate,
                                              "epoch": step / self.steps_per_epoch})
                        if step % config.train.checkpoint_every == 0 or last:
                            self.save()
                        if last:
                            finished_epoch = (step % self.steps_per_epoch == 0 or out_of_time
                                              or self.validate_every is not None)
                            break
                        if (self.validate_every and step % self.validate_every == 0
                                and step % self.steps_per_epoch != 0):
                            self._validate_and_report(logger)
                    if finished_epoch:
                        self._validate_and_report(logger, final=stepper.step >= self.total or out_of_time)
        finally:
            logger.close()
        return TrainResult(self.run.path, stepper.step, scalars, self.validation,
                           seen / max(1e-9, time.perf_counter() - t_start), self.method.parameters(), dist.world_size)

    def _validate_and_report(self, logger: RunLogger, final: bool = False) -> None:
        self.validation = self.validate()
        if self.validation:
            logger.log(self.stepper.step, self.validation)
            self.save()
            if self.on_validation is not None:
                self.on_validation(self.stepper.step, dict(self.validation), final)

    def _broadcast_flag(self, flag: bool) -> bool:
        if self.dist.world_size == 1 or self.config.train.max_minutes is None:
            return flag
        t = torch.tensor([int(flag)], device=self.dist.device)
        torch.distributed.broadcast(t, 0)
        return bool(t.item())

    def _step(self, batch: dict) -> dict[str, float]:
        step = self.stepper.step
        try:
            scalars = self.stepper.train_batch(batch)
        except TrainingDiverged as err:
            raise self._diverged(step, str(err)) from None
        bad = sorted(k for k, v in scalars.items() if not math.isfinite(v))
        if bad:
            raise self._diverged(step, f"{bad[0]} is {scalars[bad[0]]}")
        return scalars

    def _diverged(self, step: int, why: str) -> TrainingDiverged:
        last = self.run.latest_checkpoint()  # read only when it is needed, not at every step
        kept = f"the last good checkpoint ({last.name}) is kept" if last else "no checkpoint was written yet"
        return TrainingDiverged(f"{self.run.path}: training stopped at step {step + 1}: {why}; {kept}")


def _differing(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _differing(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def train(store_ref: str | Path, out: str | Path, config: RunConfig, *, device: str = "cpu",
          progress: bool = True, validate_every: int | None = None,
          on_validation: Callable[[int, dict[str, float], bool], None] | None = None) -> TrainResult:
    """Train ``config.model`` on the train split of a store; resume if ``out`` holds its run.

    See :class:`Trainer` for the arguments and errors.
    """
    return Trainer(store_ref, out, config, device=device, progress=progress, validate_every=validate_every,
                   on_validation=on_validation).fit()


class _Bar:
    """A rich progress bar with the step's first scalar and clouds/s (or nothing, when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[shown]}  {task.fields[rate]:,.0f} clouds/s"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 disable=not enabled)
        self.task = self.progress.add_task("train", total=total, completed=start, shown="", rate=0.0)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, scalars: dict[str, float], rate: float) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in list(scalars.items())[:2])
        self.progress.update(self.task, completed=step, shown=shown, rate=rate)
