"""``pcmodels train``, ``pcmodels sample`` and ``pcmodels models``.

Model and sampler choices come from the registry (:mod:`pcmodels.registry`).
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from pcmodels.registry import all_models

from ._common import handle_errors

__all__ = ["train_cmd", "sample_cmd", "models_cmd"]

Model = Enum("Model", {spec.name: spec.name for spec in all_models()}, type=str)
Sampler = Enum("Sampler", {s: s for s in dict.fromkeys(s for spec in all_models() for s in spec.samplers)}, type=str)


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class SampleFormat(str, Enum):
    store = "store"
    jetnet_hdf5 = "jetnet-hdf5"
    calochallenge_hdf5 = "calochallenge-hdf5"


@handle_errors
def train_cmd(
    store: str = typer.Option(..., "--store", "-s", help="Store path or catalog name[@version]."),
    model: Optional[Model] = typer.Option(None, "--model", "-m", help="Model (default: the config's)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder; an existing run of the same config resumes."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Sectioned YAML config (default: the model's)."),
    overrides: Optional[List[str]] = typer.Option(None, "--set", help="Override a config entry: section.key=value "
                                                  "(e.g. optim.generator.lr=2e-4); repeatable."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Train for this many epochs."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Train for this many steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Clouds per batch (per rank)."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a model on a store's train split (validation on its val split, as the model defines it)."""
    from pcmodels.config import load_config
    from pcmodels.errors import ConfigError
    from pcmodels.training import train

    if model is None and config is None:
        raise ConfigError("give --model or --config")
    for flag, value in (("--epochs", epochs), ("--steps", steps), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    cfg = load_config(config, model=model.value if model else None, overrides=tuple(overrides or ()), epochs=epochs,
                      steps=steps, batch_size=batch_size)
    result = train(store, out, cfg, device=device.value, progress=not quiet)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    shown = ", ".join(f"{k} {v:.4g}" for k, v in {**result.final, **result.validation}.items())
    typer.echo(f"run {result.run}: {cfg.model}, {result.steps} steps on {result.world_size} process(es), {shown}, "
               f"{result.clouds_per_second:,.0f} clouds/s, {result.parameters:,} parameters")


@handle_errors
def sample_cmd(
    run: Path = typer.Option(..., "--run", "-r", help="A training run folder."),
    num: int = typer.Option(..., "--num", "-n", help="Number of clouds to generate."),
    out: Path = typer.Option(..., "--out", "-o", help="Output store (or file with --format jetnet-hdf5)."),
    sampler: Optional[Sampler] = typer.Option(None, "--sampler", "--solver", help="The model's sampler "
                                              "(default: the run's); see `pcmodels models`."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps (default: the run's)."),
    batch_size: int = typer.Option(1024, "--batch-size", "-b", help="Clouds generated at once."),
    fmt: SampleFormat = typer.Option(SampleFormat.store, "--format", "-f", help="store, jetnet-hdf5 (jets) or "
                                     "calochallenge-hdf5 (showers: the official layout, hits in one cell summed)."),
    incident: str = typer.Option("model", "--incident", help="Showers: incident energies to generate for: model "
                                 "(the run's field model), log-uniform (1 GeV-1 TeV, as CaloChallenge ds2/ds3), or a "
                                 "real shower store or CaloChallenge file whose first --num energies are taken."),
    incident_split: str = typer.Option("test", "--incident-split", help="The split of an --incident store "
                                       "(all: every shower)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and the conditions."),
    device: Device = typer.Option(Device.cpu, "--device", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate clouds with the run's weights (EMA where kept); conditions from the run's field model
    (or given incident energies, for showers)."""
    from pcmodels.errors import ConfigError
    from pcmodels.sampling import sample

    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    r = sample(run, num, out, fmt=fmt.value, sampler=sampler.value if sampler else None, steps=steps,
               batch_size=batch_size, seed=seed, device=device.value, incident=incident,
               incident_split=None if incident_split == "all" else incident_split, progress=not quiet)
    how = r["sampler"] + (f" x {r['steps']} steps" if r.get("steps") else "")
    typer.echo(f"wrote {r['out']}: {num:,} clouds with {how} in {r['seconds']:.1f} s "
               f"({r['ms_per_cloud']:.2f} ms per cloud on {r['device']})")


def models_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the registered models: data kinds, networks, samplers, shipped configs."""
    specs = [s.to_dict() for s in all_models()]
    if as_json:
        typer.echo(json.dumps(specs, indent=1))
        return
    for s in specs:
        typer.echo(f"{s['name']:<10} {s['description']}")
        typer.echo(f"{'':<10} kinds: {', '.join(s['kinds'])}; networks: {', '.join(s['networks'])}; "
                   f"samplers: {', '.join(s['samplers'])}")
        typer.echo(f"{'':<10} configs: {', '.join(f'{k} ({v})' for k, v in s['configs'].items())}")
