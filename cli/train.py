"""``pcmodels train`` and ``pcmodels sample``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ._common import handle_errors

__all__ = ["train_cmd", "sample_cmd"]


class Model(str, Enum):
    epic_fm = "epic-fm"
    epic_jedi = "epic-jedi"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Solver(str, Enum):
    euler = "euler"
    midpoint = "midpoint"
    rk4 = "rk4"
    ddpm = "ddpm"
    ddim = "ddim"


class SampleFormat(str, Enum):
    store = "store"
    jetnet_hdf5 = "jetnet-hdf5"


@handle_errors
def train_cmd(
    store: str = typer.Option(..., "--store", "-s", help="Store path or catalog name[@version]."),
    model: Optional[Model] = typer.Option(None, "--model", "-m", help="Generative model (default epic-fm, or the config's)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory; an existing run of the same config resumes."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of TrainConfig settings."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Train for this many epochs."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Train for this many optimiser steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Clouds per batch (per rank)."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a generative model on a store's train split (validation loss on its val split)."""
    from pcmodels.training import load_config, train

    cfg = load_config(config, model=model.value if model else None, epochs=epochs, steps=steps, batch_size=batch_size)
    result = train(store, out, cfg, device=device.value, progress=not quiet)
    val = "-" if result.val_loss is None else f"{result.val_loss:.4f}"
    typer.echo(f"run {result.run}: {result.steps} steps, loss {result.final_loss:.4f}, val loss {val}, "
               f"{result.clouds_per_second:,.0f} clouds/s, {result.parameters:,} parameters")


@handle_errors
def sample_cmd(
    run: Path = typer.Option(..., "--run", "-r", help="A training run directory."),
    num: int = typer.Option(..., "--num", "-n", help="Number of clouds to generate."),
    out: Path = typer.Option(..., "--out", "-o", help="Output store (or file with --format jetnet-hdf5)."),
    solver: Optional[Solver] = typer.Option(None, "--solver", help="ODE solver (euler, midpoint, rk4) or, for diffusion, ddpm/ddim."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Solver steps (default: the run's sample_steps)."),
    batch_size: int = typer.Option(1024, "--batch-size", "-b", help="Clouds generated at once."),
    fmt: SampleFormat = typer.Option(SampleFormat.store, "--format", "-f", help="store or jetnet-hdf5."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and the conditions."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate clouds with the run's EMA weights; conditions come from the run's field model."""
    from pcmodels.sampling import sample

    r = sample(run, num, out, fmt=fmt.value, solver=solver.value if solver else None, steps=steps,
               batch_size=batch_size, seed=seed, device=device.value, progress=not quiet)
    typer.echo(f"wrote {r['out']}: {num:,} clouds with {r['solver']} x {r['steps']} steps in {r['seconds']:.1f} s "
               f"({r['ms_per_cloud']:.2f} ms per cloud on {r['device']})")
