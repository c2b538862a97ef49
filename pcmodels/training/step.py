"""What a training step needs besides the method: optimisers and schedules by name, DDP wrapping,
EMA by parameter name, the step's random draws, and their state for checkpoints.

:class:`Stepper` runs one method's steps; the trainer adds data, runs and logs around it. The
method calls ``ctx.optimise(name, loss)``: zero that module's gradients, back-propagate (DDP
averages the gradients over ranks here), clip, step its optimiser, update its EMA. Every
schedule advances once per training step, as in the references.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn

from ..config import OptimConfig
from ..methods.base import Draws, Method, split_batch
from .checkpoint import flatten_optimizer, unflatten_optimizer

__all__ = ["Stepper", "Context", "step_generator", "lr_factor", "build_optimizer", "split_batch"]


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of every random draw of one step: a function of (seed, step) only, the same on every rank."""
    # any injective mix of (seed, step) keeps the promise; the mutants of this line are equivalent
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + step) % (2**63))  # pragma: no mutate


def lr_factor(warmup: int, total: int, schedule: str):
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total`` (or constant)."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return cls(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


class Context(Draws):
    """The :class:`~pcmodels.methods.base.StepContext` of one step."""

    def __init__(self, stepper: "Stepper", step: int, generator: torch.Generator):
        super().__init__(generator, stepper.rank, stepper.world_size)  # pragma: no mutate (DDP: see Stepper)
        self.step, self.modules, self._stepper = step, stepper.wrapped, stepper
        self.padding: float | None = None  # set by chunks(): the step's padded fraction

    def optimise(self, name: str, loss: torch.Tensor) -> None:
        self._stepper.optimise(name, loss)

    def chunks(self, batch: dict, *names: str) -> Iterator[tuple[dict, float]]:
        """The batch in chunks of at most the run's ``max_points`` padded points, with each chunk's
        share of the batch's clouds: back-propagate ``share * chunk_loss`` (a mean over the chunk's
        clouds) into modules ``names`` for each, then :meth:`update` each. Gradients add up to the
        whole batch's; with DDP, ranks synchronise once, on the last chunk."""
        parts = split_batch(batch, self._stepper.max_points)
        real = sum(int(p["mask"].sum()) for p, _ in parts)
        padded = sum(p["mask"].numel() for p, _ in parts)
        self.padding = 1.0 - real / max(1, padded)
        for name in names:
            self._stepper.optimisers[name].zero_grad(set_to_none=True)  # pragma: no mutate (zeros accumulate as None does)
        for i, (part, share) in enumerate(parts):
            with contextlib.ExitStack() as stack:
                if i < len(parts) - 1:  # pragma: no mutate (DDP only: no_sync on all chunks but the last)
                    for name in names:
                        module = self.modules[name]  # pragma: no mutate
                        if isinstance(module, nn.parallel.DistributedDataParallel):  # pragma: no mutate
                            stack.enter_context(module.no_sync())  # pragma: no mutate
                yield part, share

    def update(self, name: str) -> None:
        """Clip, step the optimiser and update the EMA of module ``name`` from its accumulated gradients."""
        self._stepper.finish(name)

    def autocast(self):
        dev = self._stepper.device
        # bfloat16 is used on CUDA only: on the CPU (here) the dtype's mutants are equivalent
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self._stepper.amp)  # pragma: no mutate


class Stepper:
    """Runs a method's training steps.

    Args:
        method: the method (its modules already on ``device``).
        optim: one :class:`OptimConfig` per optimised module, in the method's stepping order.
        total_steps: length of the run (the cosine schedules end there).
        seed: names every random draw (with the step).
        ema: EMA decay of the optimised modules (0: the EMA copy follows the weights).
        device, rank, world_size: where this process runs; with ``world_size > 1`` (an initialised
            process group) every optimised module is wrapped in DistributedDataParallel.
        amp: bfloat16 autocast (CUDA only).
    """

    def __init__(self, method: Method, optim: dict[str, OptimConfig], *, total_steps: int, seed: int, ema: float,
                 device: torch.device, rank: int = 0, world_size: int = 1, amp: bool = False,
                 max_points: int | None = None):
        self.method, self.configs, self.seed, self.decay = method, dict(optim), seed, ema
        self.max_points = max_points
        # CUDA- and DDP-only lines (their mutants need a GPU, or the 2-process torchrun conformance
        # test, which runs outside mutmut's process) carry "pragma: no mutate"
        self.device, self.rank, self.world_size, self.amp = device, rank, world_size, amp and device.type == "cuda"  # pragma: no mutate
        self.optimisers = {n: build_optimizer(c, method.modules[n].parameters()) for n, c in optim.items()}
        self.schedulers = {n: torch.optim.lr_scheduler.LambdaLR(self.optimisers[n], lr_factor(c.warmup_steps, total_steps, c.schedule))
                           for n, c in optim.items()}
        self.ema = {n: {k: p.detach().clone() for k, p in method.modules[n].named_parameters()} for n in optim}
        self.ema_updates = {n: 0 for n in optim}
        self.wrapped: dict[str, nn.Module] = dict(method.modules)
        if world_size > 1:  # pragma: no mutate
            ids = [device.index] if device.type == "cuda" else None  # pragma: no mutate
            for n in optim:
                self.wrapped[n] = nn.parallel.DistributedDataParallel(method.modules[n], device_ids=ids)  # pragma: no mutate
        self.step = 0

    # -- one step ----------------------------------------------------------------------------------
    def optimise(self, name: str, loss: torch.Tensor) -> None:
        self.optimisers[name].zero_grad(set_to_none=True)  # pragma: no mutate (zeros accumulate as None does)
        loss.backward()
        self.finish(name)

    def finish(self, name: str) -> None:
        """The end of an update of module ``name`` (its gradients in place): clip, step, EMA."""
        opt = self.optimisers[name]
        clip = self.configs[name].grad_clip
        module = self.method.modules[name]
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        opt.step()
        with torch.no_grad():
            # EMA warm-up: early on the average would be dominated by the random start.
            n = self.ema_updates[name]
            decay = min(self.decay, (1.0 + n) / (10.0 + n))
            ema = self.ema[name]
            names = list(ema)
            params = dict(module.named_parameters())
            torch._foreach_lerp_([ema[k] for k in names], [params[k].detach() for k in names], 1.0 - decay)
        self.ema_updates[name] = n + 1

    def train_batch(self, batch: dict) -> dict[str, float]:
        """One step on a CPU batch: moved to the device, given to the method; returns its scalars."""
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}  # pragma: no mutate (CPU)
        for m in self.method.modules.values():
            m.train()
        ctx = Context(self, self.step, step_generator(self.seed, self.step, self.device))  # pragma: no mutate (CPU)
        scalars = self.method.train_step(batch, ctx)
        if ctx.padding is not None:
            scalars = {**scalars, "padding": ctx.padding}
        for sched in self.schedulers.values():
            sched.step()
        self.step += 1
        return scalars

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{n}" if len(self.schedulers) > 1 else "lr": s.get_last_lr()[0] for n, s in self.schedulers.items()}

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[Method]:
        """The method with its EMA weights in place (eval mode), the live weights restored after."""
        live = {n: {k: p.detach().clone() for k, p in self.method.modules[n].named_parameters()} for n in self.ema}
        self._load(self.ema)
        self.method.eval()
        try:
            yield self.method
        finally:
            self._load(live)

    def _load(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        for n, named in weights.items():
            copy_parameters(self.method.modules[n], named)

    # -- state ---------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Checkpoint tensors (modules, EMA, optimisers by name) and JSON metadata."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict = {"step": self.step, "optimizers": {}, "schedulers": {}, "ema_updates": dict(self.ema_updates)}
        for n, m in self.method.modules.items():
            tensors.update({f"module.{n}.{k}": v for k, v in m.state_dict().items()})
        for n, named in self.ema.items():
            tensors.update({f"ema.{n}.{k}": v for k, v in named.items()})
        for n, opt in self.optimisers.items():
            t, meta["optimizers"][n] = flatten_optimizer(opt.state_dict(), prefix=f"optim.{n}.")
            tensors.update(t)
            meta["schedulers"][n] = self.schedulers[n].state_dict()
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        for n, m in self.method.modules.items():
            m.load_state_dict(module_tensors(tensors, n))
        for n in self.ema:
            self.ema[n] = {k: tensors[f"ema.{n}.{k}"].to(self.device) for k in self.ema[n]}  # pragma: no mutate (CPU)
            self.optimisers[n].load_state_dict(unflatten_optimizer(tensors, meta["optimizers"][n], prefix=f"optim.{n}."))
            self.schedulers[n].load_state_dict(meta["schedulers"][n])
        self.ema_updates = {n: int(v) for n, v in meta["ema_updates"].items()}
        self.step = int(meta["step"])


def copy_parameters(module: nn.Module, named: dict[str, torch.Tensor]) -> None:
    """Copy tensors into a module's parameters by name (EMA weights in and out)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for k, v in named.items():
            params[k].copy_(v)


def module_tensors(tensors: dict[str, torch.Tensor], name: str, kind: str = "module") -> dict[str, torch.Tensor]:
    """The tensors of one module (``kind`` ``module`` for its state dict, ``ema`` for its averaged parameters)."""
    prefix = f"{kind}.{name}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
