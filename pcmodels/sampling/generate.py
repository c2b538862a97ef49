"""Generate clouds from a trained run: conditions from the run's field model, the model (EMA
weights where kept), the method's sampler, the inverse transforms back to physical coordinates,
written as a store (so every pcdata tool reads it) or in the JetNet layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pcdata import Clouds
from pcdata.store import Feature, StoreMeta, write_store

from ..errors import ConfigError
from ..run import Run

__all__ = ["sample", "generate_clouds"]


@torch.no_grad()
def generate_clouds(run: str | Path | Run, num: int, *, sampler: str | None = None, steps: int | None = None,
                    batch_size: int = 1024, seed: int = 0, device: str = "cpu",
                    progress: bool = True) -> tuple[Clouds, dict]:
    """Sample ``num`` clouds in physical coordinates (with their conditioning fields).

    Args:
        run: a run folder (or an open :class:`Run`).
        num: clouds to generate.
        sampler, steps: the model's sampler and its steps (default: the run's ``sampling`` section).
        batch_size: clouds generated at once.
        seed: seeds the conditions and the noise: the same seed gives the same clouds.

    Returns:
        The clouds and timing information (seconds, ms per cloud, network evaluations).
    """
    if num < 1:
        raise ConfigError(f"--num must be >= 1, got {num}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    run = run if isinstance(run, Run) else Run.open(run)
    config = run.config
    method, step = run.load_method(device)
    transforms, fieldmodel = run.transforms(), run.fieldmodel()
    sampler = sampler or config.sampling.sampler
    try:
        settings = method.sampler_settings(sampler, steps)
    except ValueError as err:
        raise ConfigError(f"--sampler: {err} for {config.model}") from None
    g = torch.Generator().manual_seed(seed)
    counts, fields = fieldmodel.sample(num, g)
    names = list(config.data.cond_fields)
    features = run.data.point_features
    parts = []
    t0 = time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"sample {config.model} ({settings['sampler']})", total=num)
        for lo in range(0, num, batch_size):
            c = counts[lo : lo + batch_size]
            n = max(1, int(c.max()))
            mask = torch.arange(n).expand(len(c), n) < torch.as_tensor(c).unsqueeze(1)
            cloud = torch.as_tensor(np.stack([fields[k][lo : lo + batch_size] for k in names], 1) if names else
                                    np.zeros((len(c), 0)), dtype=torch.float32)
            batch = {"points": torch.zeros(len(c), n, len(features)), "mask": mask, "cloud": cloud}
            cond = transforms(batch)["cloud"].to(device) if names else None
            x = method.sample(mask.to(device), cond, generator=g, sampler=settings["sampler"], steps=settings["steps"])
            out = transforms.inverse({"points": x.float().cpu(), "mask": mask, "cloud": cloud})
            pts = out["points"].numpy()
            offsets = np.concatenate([[0], np.cumsum(c)]).astype(np.int64)
            parts.append(Clouds(np.ascontiguousarray(pts[mask.numpy()], dtype=np.float32), offsets,
                                {k: fields[k][lo : lo + batch_size] for k in names}, tuple(features)))
            bar.advance(task, len(c))
    seconds = time.perf_counter() - t0
    clouds = Clouds.concat(parts)
    fields_out = {}
    for spec in run.info["store"]["cloud_feature_specs"]:
        v = clouds.fields[spec["name"]]
        fields_out[spec["name"]] = (np.round(v) if np.dtype(spec["dtype"]).kind in "iu" else v).astype(spec["dtype"])
    clouds = Clouds(clouds.points, clouds.offsets, fields_out, clouds.point_features)
    return clouds, {"model": config.model, "seconds": seconds, "ms_per_cloud": 1e3 * seconds / num, **settings,
                    "batch_size": batch_size, "checkpoint_step": step, "device": device, "seed": seed}


def sample(run, num: int, out: str | Path, *, fmt: Literal["store", "jetnet-hdf5"] = "store", sampler: str | None = None,
           steps: int | None = None, batch_size: int = 1024, seed: int = 0, device: str = "cpu",
           progress: bool = True) -> dict:
    """Generate ``num`` clouds from ``run`` and write them to ``out`` (a store or a JetNet file)."""
    run = Run.open(run)
    clouds, timing = generate_clouds(run, num, sampler=sampler, steps=steps, batch_size=batch_size, seed=seed,
                                     device=device, progress=progress)
    info = run.info["store"]
    if fmt == "jetnet-hdf5":
        from pcdata.sources.jetnet import clouds_to_jetnet, write_jetnet_hdf5

        p = int(info["attrs"].get("num_particles") or clouds.counts.max())
        write_jetnet_hdf5(out, *clouds_to_jetnet(clouds, p))
    else:
        meta = StoreMeta(kind=info["kind"], coords=info["coords"],
                         point_features=tuple(Feature.from_dict(f) for f in info["point_feature_specs"]),
                         cloud_features=tuple(Feature.from_dict(f) for f in info["cloud_feature_specs"]),
                         attrs={**info["attrs"], "generated_by": str(run.path.resolve()), "sampling": timing})
        write_store(out, clouds, meta, overwrite=True)
    return {**timing, "num": num, "out": str(out)}
