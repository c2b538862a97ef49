"""Benchmark: generation cost of the GANs, one forward pass, ms per cloud at batch ``--batch``.

DeepTreeGAN against MDMA with their ``small`` (jets) and ``small-showers`` configs and, with
``--paper``, their paper configs, untrained (the cost of a pass does not depend on the weights).
Jets: every jet has ``--particles`` points (30 or 150). Showers: every shower has ``--hits`` hits
(MDMA's cost grows with them; DeepTreeGAN always grows its whole 6,480-point tree). The time is
``method.sample`` (noise, network, clamp, padding, DeepTreeGAN's p_T renormalisation where bound),
best of ``--reps``, on the CPU with the threads torch chooses.

    python benchmarks/bench_gan_generation.py [--batch 1000] [--particles 30] [--hits 1000] [--paper]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def _method(model: str, role: str, features: tuple[str, ...], fields: tuple[str, ...], points: int):
    from pcmodels.config import load_config
    from pcmodels.methods.base import DataSpec
    from pcmodels.registry import get_model

    spec = get_model(model)
    cfg = load_config(spec.config_path(role))
    data = DataSpec(features, tuple(cfg.data.cond_fields), points, float(points), (-5.0,) * len(features),
                    (5.0,) * len(features))
    torch.manual_seed(0)
    return spec.method(cfg, data).eval(), len(cfg.data.cond_fields)


def _ms(method, fields: int, batch: int, points: int, reps: int) -> float:
    mask = torch.ones(batch, points, dtype=torch.bool)
    cond = torch.zeros(batch, fields) if fields else None
    best = float("inf")
    for r in range(reps):
        g = torch.Generator().manual_seed(r)
        t0 = time.perf_counter()
        method.sample(mask, cond, generator=g)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--particles", type=int, default=30, choices=(30, 150))
    ap.add_argument("--hits", type=int, default=1000, help="hits per shower (0: no shower timing)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--paper", action="store_true", help="also the paper-size configs")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}")
    jets = ("etarel", "phirel", "ptrel")
    p = args.particles
    # The small configs are top30 models (DeepTreeGAN's small tree makes 30 points).
    roles = ([("small", "small")] if p == 30 else []) + ([(f"top{p}", f"top{p}")] if args.paper else [])
    for dt_role, mdma_role in roles:
        for model, role in (("deeptree", dt_role), ("mdma", mdma_role)):
            method, nf = _method(model, role, jets, (), p)
            ms = _ms(method, nf, args.batch, p, args.reps)
            gen = sum(q.numel() for q in method.modules["generator"].parameters())
            print(f"jets {p:3d}  {model:8s} {role:14s} generator {gen:>9,} params  {ms:8.3f} ms/jet")
    if args.hits:
        shower = ("layer", "alpha_bin", "r_bin", "energy")
        for model in ("deeptree", "mdma"):
            method, nf = _method(model, "small-showers", shower, ("incident_energy",), args.hits)
            ms = _ms(method, nf, args.batch, args.hits, args.reps)
            gen = sum(q.numel() for q in method.modules["generator"].parameters())
            print(f"showers {args.hits} hits  {model:8s} small-showers  generator {gen:>9,} params  "
                  f"{ms:8.3f} ms/shower")


if __name__ == "__main__":
    main()
