"""Benchmark: jets per second of ``pcdata.generate.jets.generate_jets`` on 1 and more workers.

Usage:
    python benchmarks/bench_generate_jets.py [--process top] [--num-jets 2000] [--num-particles 30] [--workers 1,2]

The whole call is timed (Pythia initialisation per partition, worker start-up and the HDF5 write
included), and the files of the different worker counts are checked to be bit-identical.
Baseline beside it: the figure in FACTS.md (top pairs at ~70 events/s on one core with ~2 jets of
pT > 800 GeV per event, before matching) is an upper bound of ~140 jets/s per core.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Runnable from a source tree without installing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcdata.generate.jets import generate_jets  # noqa: E402

BASELINE_JETS_PER_S_PER_CORE = 140.0


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a shared machine jets per CPU-second
    shows the generator's own cost when the wall-clock rate is diluted by other load."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="top", choices=("top", "g", "q", "qcd", "w", "z"))
    parser.add_argument("--num-jets", type=int, default=2000)
    parser.add_argument("--num-particles", type=int, default=30, choices=(30, 150))
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    print(f"generate {args.num_jets} {args.process}{args.num_particles} jets, {os.cpu_count()} CPU cores")
    print(f"{'workers':>8} {'seconds':>8} {'jets/s':>8} {'baseline jets/s':>16} {'cpu s':>7} {'jets/cpu-s':>11}")
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for w in workers:
            out = Path(tmp) / f"{args.process}{args.num_particles}_w{w}.hdf5"
            start = time.perf_counter()
            cpu0 = _cpu_seconds()
            generate_jets(out, process=args.process, num_jets=args.num_jets, num_particles=args.num_particles,
                          seed=args.seed, workers=w, progress=False)
            seconds = time.perf_counter() - start
            cpu = _cpu_seconds() - cpu0
            digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
            baseline = BASELINE_JETS_PER_S_PER_CORE * min(w, os.cpu_count() or 1)
            print(f"{w:>8} {seconds:>8.1f} {args.num_jets / seconds:>8.0f} {baseline:>16.0f} {cpu:>7.1f} {args.num_jets / cpu:>11.0f}")
    print("files identical across worker counts:", "yes" if len(digests) == 1 else "NO")


if __name__ == "__main__":
    main()
