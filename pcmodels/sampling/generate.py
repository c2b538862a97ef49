"""Generate clouds from a trained run: conditions from the run's field model, the EMA network,
the method's sampler, the inverse transforms back to physical coordinates, written as a store
(so every pcdata tool reads it) or in the JetNet layout."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pcdata import Clouds
from pcdata.loaders import transform_from_dict
from pcdata.store import Feature, StoreMeta, write_store

from ..conditioning import CloudFieldModel
from ..errors import ConfigError, RunError
from ..training.checkpoint import latest_checkpoint, load_checkpoint
from ..training.config import TrainConfig
from ..training.trainer import build_method, build_network

__all__ = ["load_run", "sample", "generate_clouds"]


def load_run(run: str | Path, device: str = "cpu"):
    """The EMA network, method, transforms, field model and run info of a trained run."""
    from safetensors.torch import load_file

    run = Path(run)
    if not (run / "run.json").exists():
        raise RunError(f"{run}: not a training run (no run.json)")
    info = json.loads((run / "run.json").read_text())
    config = TrainConfig.from_dict(info["config"], where=str(run / "run.json"))
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise RunError(f"{run}: has no checkpoint yet; train first")
    tensors, meta = load_checkpoint(ckpt)
    net = build_network(config, len(info["point_features"]), len(info["cond_fields"]))
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(tensors[f"ema.{i}"])
    net.eval().to(device)
    fieldmodel = CloudFieldModel.restore(load_file(str(run / "fieldmodel.safetensors")), info["fieldmodel"])
    return net, build_method(config), transform_from_dict(info["transforms"]), fieldmodel, config, info, int(meta["step"])


@torch.no_grad()
def generate_clouds(run, num: int, *, solver: str | None = None, steps: int | None = None, batch_size: int = 1024,
                    seed: int = 0, device: str = "cpu", progress: bool = True) -> tuple[Clouds, dict]:
    """Sample ``num`` clouds in physical coordinates (with their conditioning fields).

    Returns:
        The clouds and timing information (seconds, ms per cloud, network evaluations).
    """
    if num < 1:
        raise ConfigError(f"--num must be >= 1, got {num}")
    net, method, transforms, fieldmodel, config, info, step = load_run(run, device)
    solver = solver or config.sampler
    if solver not in method.samplers:
        raise ConfigError(f"--solver {solver!r} is not a sampler of {method.name} (choose from {', '.join(method.samplers)})")
    steps = steps or config.sample_steps
    g = torch.Generator().manual_seed(seed)
    counts, fields = fieldmodel.sample(num, g)
    names = list(info["cond_fields"])
    parts = []
    t0 = time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"sample {method.name} ({solver}, {steps} steps)", total=num)
        for lo in range(0, num, batch_size):
            c = counts[lo : lo + batch_size]
            n = max(1, int(c.max()))
            mask = torch.arange(n).expand(len(c), n) < torch.as_tensor(c).unsqueeze(1)
            cloud = torch.as_tensor(np.stack([fields[k][lo : lo + batch_size] for k in names], 1) if names else
                                    np.zeros((len(c), 0)), dtype=torch.float32)
            batch = {"points": torch.zeros(len(c), n, len(info["point_features"])), "mask": mask, "cloud": cloud}
            cond = transforms(batch)["cloud"].to(device) if names else None
            noise = torch.randn(batch["points"].shape, generator=g).to(device)
            x = method.sample(net, noise, mask.to(device), cond, solver=solver, steps=steps, generator=None)
            out = transforms.inverse({"points": (x / config.feature_scale).cpu(), "mask": mask, "cloud": cloud})
            pts = out["points"].numpy()
            offsets = np.concatenate([[0], np.cumsum(c)]).astype(np.int64)
            parts.append(Clouds(np.ascontiguousarray(pts[mask.numpy()], dtype=np.float32), offsets,
                                {k: fields[k][lo : lo + batch_size] for k in names}, tuple(info["point_features"])))
            bar.advance(task, len(c))
    seconds = time.perf_counter() - t0
    clouds = Clouds.concat(parts)
    fields_out = {}
    for spec in info["cloud_feature_specs"]:
        v = clouds.fields[spec["name"]]
        fields_out[spec["name"]] = (np.round(v) if np.dtype(spec["dtype"]).kind in "iu" else v).astype(spec["dtype"])
    clouds = Clouds(clouds.points, clouds.offsets, fields_out, clouds.point_features)
    from ..sampling.solvers import function_evaluations

    evals = function_evaluations(solver, steps) if solver in ("euler", "midpoint", "rk4") else steps
    return clouds, {"seconds": seconds, "ms_per_cloud": 1e3 * seconds / num, "solver": solver, "steps": steps,
                    "network_evaluations": evals, "checkpoint_step": step, "device": device}


def sample(run, num: int, out: str | Path, *, fmt: Literal["store", "jetnet-hdf5"] = "store", solver: str | None = None,
           steps: int | None = None, batch_size: int = 1024, seed: int = 0, device: str = "cpu",
           progress: bool = True) -> dict:
    """Generate ``num`` clouds from ``run`` and write them to ``out`` (a store or a JetNet file)."""
    clouds, timing = generate_clouds(run, num, solver=solver, steps=steps, batch_size=batch_size, seed=seed,
                                     device=device, progress=progress)
    info = json.loads((Path(run) / "run.json").read_text())
    if fmt == "jetnet-hdf5":
        from pcdata.sources.jetnet import clouds_to_jetnet, write_jetnet_hdf5

        p = int(info["store_attrs"].get("num_particles") or clouds.counts.max())
        write_jetnet_hdf5(out, *clouds_to_jetnet(clouds, p))
    else:
        meta = StoreMeta(kind=info["kind"], coords=info["coords"],
                         point_features=tuple(Feature.from_dict(f) for f in info["point_feature_specs"]),
                         cloud_features=tuple(Feature.from_dict(f) for f in info["cloud_feature_specs"]),
                         attrs={**info["store_attrs"], "generated_by": str(Path(run).resolve()), "sampling": timing})
        write_store(out, clouds, meta, overwrite=True)
    return {**timing, "num": num, "out": str(out)}
