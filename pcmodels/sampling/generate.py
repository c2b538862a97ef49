"""Generate clouds from a trained run: conditions from the run's field model (or, for showers, given
incident energies), the model (EMA weights where kept), the method's sampler, the inverse
transforms back to physical coordinates, the model's finishing step for showers
(:mod:`.showers`), written as a store (so every pcdata tool reads it), in the JetNet layout or as
an official CaloChallenge file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pcdata import Clouds
from pcdata.store import Feature, StoreMeta, write_store

from ..errors import ConfigError
from ..methods.base import sorted_runs
from ..run import Run

__all__ = ["sample", "generate_clouds"]


@torch.no_grad()
def generate_clouds(run: str | Path | Run, num: int, *, sampler: str | None = None, steps: int | None = None,
                    batch_size: int = 1024, seed: int = 0, device: str = "cpu", incident: str = "model",
                    incident_split: str | None = "test", progress: bool = True) -> tuple[Clouds, dict]:
    """Sample ``num`` clouds in physical coordinates (with their conditioning fields).

    Args:
        run: a run folder (or an open :class:`Run`).
        num: clouds to generate.
        sampler, steps: the model's sampler and its steps (default: the run's ``sampling`` section).
        batch_size: clouds generated at once.
        seed: seeds the conditions and the noise: the same seed gives the same clouds.
        incident: showers only: the incident energies to generate for: ``model`` (the run's
            field model), ``log-uniform`` (1 GeV to 1 TeV, as the CaloChallenge ds2/ds3 files), or
            a real shower store (its ``incident_split``) or CaloChallenge file whose first ``num``
            energies are taken.

    Returns:
        The clouds and timing information (seconds, ms per cloud, network evaluations).
    """
    if num < 1:
        raise ConfigError(f"num: must be >= 1, got {num}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    run = run if isinstance(run, Run) else Run.open(run)
    config = run.config
    method, step = run.load_method(device)
    transforms, fieldmodel = run.transforms(), run.fieldmodel()
    finish = (run.info.get("plan") or {}).get("finish")
    sampler = sampler or config.sampling.sampler
    try:
        settings = method.sampler_settings(sampler, steps)
    except ValueError as err:
        raise ConfigError(f"sampler: {err} for {config.model}") from None
    g = torch.Generator().manual_seed(seed)
    if incident == "model":
        counts, fields = fieldmodel.sample(num, g)
    else:
        if run.info["store"]["kind"] != "showers":
            raise ConfigError(f"incident: {run.path} is a run of {run.info['store']['kind']}; incident energies "
                              "are for showers")
        from .showers import incident_energies

        energies = incident_energies(incident, num, generator=g, split=incident_split)
        counts, fields = fieldmodel.sample_given("incident_energy", energies, g)
    names = list(config.data.cond_fields)
    features = run.data.point_features
    max_points = config.data.max_points or _PIECE_POINTS
    parts = []
    t0 = time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"sample {config.model} ({settings['sampler']})", total=num)
        for lo in range(0, num, batch_size):
            c = counts[lo : lo + batch_size]
            b = len(c)
            cloud = torch.as_tensor(np.stack([fields[k][lo : lo + batch_size] for k in names], 1) if names else
                                    np.zeros((b, 0)), dtype=torch.float32)
            empty = {"points": torch.zeros(b, 1, len(features)), "mask": torch.zeros(b, 1, dtype=torch.bool)}
            batch_fields = {k: np.asarray(fields[k][lo : lo + batch_size], dtype=np.float64) for k in names}
            cond = transforms({**empty, "cloud": cloud}, g)["cloud"] if names else None
            if cond is not None:
                drawn = method.sample_fields(cond.to(device), generator=g).float().cpu()
                changed = [i for i in range(len(names)) if not torch.equal(drawn[:, i], cond[:, i])]
                if changed:
                    # The model draws some fields itself (hits, energy sum): they set the multiplicity.
                    cond = drawn
                    back = transforms.inverse({**empty, "cloud": cond})["cloud"].numpy()
                    batch_fields.update({names[i]: back[:, i].astype(np.float64) for i in changed})
                    c = np.clip(batch_fields["num_points"].astype(np.int64), 1, run.data.max_points)
                cond = cond.to(device)
            flat = []
            for rows in _pieces(c, finish is not None, max_points):
                n = max(1, int(c[rows].max()))
                mask = torch.arange(n).expand(len(rows), n) < torch.as_tensor(c[rows]).unsqueeze(1)
                cond_r = cond[torch.as_tensor(rows, device=cond.device)] if cond is not None else None
                x = method.sample(mask.to(device), cond_r, generator=g, sampler=settings["sampler"],
                                  steps=settings["steps"])
                out = transforms.inverse({"points": x.float().cpu(), "mask": mask, "cloud": cond_r.float().cpu()
                                          if cond_r is not None else cloud[rows]})
                flat.append((rows, out["points"].numpy()[mask.numpy()]))
            pts = _in_order(flat, c)
            offsets = np.concatenate([[0], np.cumsum(c)]).astype(np.int64)
            if finish is not None:
                rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
                from .showers import finish_showers

                parts.append(finish_showers(finish, pts, tuple(features), offsets, batch_fields,
                                            run.info["store"]["attrs"]["geometry"], rng))
            else:
                parts.append(Clouds(np.ascontiguousarray(pts, dtype=np.float32), offsets,
                                    batch_fields, tuple(features)))
            bar.advance(task, b)
    seconds = time.perf_counter() - t0
    clouds = Clouds.concat(parts)
    fields_out = {}
    for spec in run.info["store"]["cloud_feature_specs"]:
        v = clouds.fields[spec["name"]]
        fields_out[spec["name"]] = (np.round(v) if np.dtype(spec["dtype"]).kind in "iu" else v).astype(spec["dtype"])
    clouds = Clouds(clouds.points, clouds.offsets, fields_out, clouds.point_features)
    return clouds, {"model": config.model, "seconds": seconds, "ms_per_cloud": 1e3 * seconds / num, **settings,
                    "batch_size": batch_size, "checkpoint_step": step, "device": device, "seed": seed,
                    **({"incident": incident} if finish is not None else {})}


#: Padded points per network pass when generating showers (runs without ``data.max_points``).
_PIECE_POINTS = 1 << 18


def _pieces(counts: np.ndarray, by_size: bool, max_points: int) -> list[np.ndarray]:
    """The rows of a generation batch, in passes: the whole batch (jets), or for showers rows
    sorted by hit count and cut under ``max_points`` padded points, so that a pass pads little."""
    return sorted_runs(counts, max_points) if by_size else [np.arange(len(counts))]


def _in_order(flat: list[tuple[np.ndarray, np.ndarray]], counts: np.ndarray) -> np.ndarray:
    """The points of the passes back in the batch's row order."""
    if len(flat) == 1 and np.array_equal(flat[0][0], np.arange(len(counts))):
        return flat[0][1]
    rows = np.concatenate([r for r, _ in flat])
    points = np.concatenate([p for _, p in flat])
    owner = np.repeat(rows, counts[rows])
    return points[np.argsort(owner, kind="stable")]


def sample(run, num: int, out: str | Path, *, fmt: Literal["store", "jetnet-hdf5", "calochallenge-hdf5"] = "store",
           sampler: str | None = None, steps: int | None = None, batch_size: int = 1024, seed: int = 0,
           device: str = "cpu", incident: str = "model", incident_split: str | None = "test",
           progress: bool = True) -> dict:
    """Generate ``num`` clouds from ``run`` and write them to ``out``: a store, a JetNet file
    (jets) or an official CaloChallenge HDF5 file (showers; hits in one cell summed)."""
    run = Run.open(run)
    kind = run.info["store"]["kind"]
    wanted = {"jetnet-hdf5": "jets", "calochallenge-hdf5": "showers"}.get(fmt)
    if wanted is not None and wanted != kind:
        raise ConfigError(f"format: {fmt}: {run.path} is a run of {kind}; {fmt} holds {wanted}")
    clouds, timing = generate_clouds(run, num, sampler=sampler, steps=steps, batch_size=batch_size, seed=seed,
                                     device=device, incident=incident, incident_split=incident_split, progress=progress)
    info = run.info["store"]
    if fmt == "jetnet-hdf5":
        from pcdata.sources.jetnet import clouds_to_jetnet, write_jetnet_hdf5

        p = int(info["attrs"].get("num_particles") or clouds.counts.max())
        write_jetnet_hdf5(out, *clouds_to_jetnet(clouds, p))
    elif fmt == "calochallenge-hdf5":
        from pcdata.geometry.voxels import clouds_to_voxels
        from pcdata.sources.calochallenge import write_calochallenge_hdf5

        inc, showers = clouds_to_voxels(clouds, info["attrs"]["geometry"])
        write_calochallenge_hdf5(out, inc.astype(np.float64), showers)
    else:
        meta = StoreMeta(kind=info["kind"], coords=info["coords"],
                         point_features=tuple(Feature.from_dict(f) for f in info["point_feature_specs"]),
                         cloud_features=tuple(Feature.from_dict(f) for f in info["cloud_feature_specs"]),
                         attrs={**info["attrs"], "generated_by": str(run.path.resolve()), "sampling": timing})
        write_store(out, clouds, meta, overwrite=True)
    return {**timing, "num": num, "out": str(out)}
