"""Benchmark: parametrised ds2 shower generation, showers/s on 1 and 2 worker processes.

Three figures side by side, best of ``--repeat`` runs:

- ``simulate only``: :func:`simulate_showers` in this process, no file (the physics limit);
- ``generate, 1 worker``: the whole command, HDF5 gzip writing included (the baseline);
- ``generate, 2 workers``: spawn pool, partitions written in order (pool start-up included).

    python benchmarks/bench_generate_showers.py [--showers 3000] [--geometry ds2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def simulate_only(geometry: str, n: int) -> float:
    from pcdata.generate.showers import sample_incident_energies, simulate_showers

    rng = np.random.default_rng(0)
    energies = sample_incident_energies(n, geometry, rng)
    t = time.perf_counter()
    simulate_showers(energies, geometry=geometry, seed=rng)
    return n / (time.perf_counter() - t)


def generate(geometry: str, n: int, workers: int, workdir: Path) -> tuple[float, float]:
    from pcdata.generate.showers import generate_showers

    out = workdir / f"{geometry}-{workers}.hdf5"
    t = time.perf_counter()
    generate_showers(out, geometry=geometry, num_showers=n, seed=1, workers=workers, progress=False)
    rate = n / (time.perf_counter() - t)
    size = out.stat().st_size
    out.unlink()
    return rate, size / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--showers", type=int, default=3000)
    parser.add_argument("--geometry", default="ds2")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    print(f"{args.geometry}: {args.showers} showers, log-uniform 1 GeV - 1 TeV, {os.cpu_count()} CPU cores")
    sim = max(simulate_only(args.geometry, args.showers) for _ in range(args.repeat))
    with tempfile.TemporaryDirectory() as d:
        one = max((generate(args.geometry, args.showers, 1, Path(d)) for _ in range(args.repeat)), key=lambda r: r[0])
        two = max((generate(args.geometry, args.showers, 2, Path(d)) for _ in range(args.repeat)), key=lambda r: r[0])
    print(f"{'simulate only (1 process)':<28}{sim:10,.0f} showers/s")
    print(f"{'generate, 1 worker':<28}{one[0]:10,.0f} showers/s   (baseline; {one[1] / 1024:.1f} KiB per shower on disk)")
    print(f"{'generate, 2 workers':<28}{two[0]:10,.0f} showers/s   ({two[0] / one[0]:.2f}x the baseline)")


if __name__ == "__main__":
    main()
