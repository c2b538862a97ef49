"""Benchmark: ROOT ingest (JetClass-layout per-jet tree) against a plain uproot read of the same branches.

The input is a TTree written with uproot from Pythia 8 top jets (150 particles; the base jets of
``bench_ingest_jetnet.py`` repeated to ``--jets``), with jagged ``part_px/py/pz/energy`` and the
``jet_*`` and ``label_*`` branches. The baseline reads those branches into awkward arrays in one
process (``tree.arrays``: decompression and deserialisation, nothing else). Ingest converts to
relative coordinates, sorts by pT, validates and writes the store, on a running LocalCluster with 1
and 2 workers (start-up not counted), in uproot steps of ``--step`` entries. ``--format rntuple``
writes the same content as an RNTuple (clusters of 5,000 jets, as the TTree's baskets) instead.

    python benchmarks/bench_ingest_root.py [--jets 100000] [--step 10000] [--format ttree|rntuple] [--workdir bench-data]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BRANCHES = ["part_px", "part_py", "part_pz", "part_energy", "jet_pt", "jet_eta", "jet_phi", "jet_energy"]


def make_input(workdir: Path, jets: int, fmt: str = "ttree") -> Path:
    import h5py
    import numpy as np

    from tests.helpers import jetclass_arrays, write_rntuple, write_root

    path = workdir / f"jetclass-top150-{jets}{'-rntuple' if fmt == 'rntuple' else ''}.root"
    if path.exists():
        return path
    base = workdir / "t150-base-4000.hdf5"
    if not base.exists():
        from pcdata.generate.jets import generate_jets

        generate_jets(base, process="top", num_jets=4000, num_particles=150, seed=7, workers=2)
    with h5py.File(base) as f:
        pf, jf = f["particle_features"][:], f["jet_features"][:]
    reps = -(-jets // len(pf))
    pf, jf = np.concatenate([pf] * reps)[:jets], np.concatenate([jf] * reps)[:jets]
    if fmt == "rntuple":
        write_rntuple(path, "tree", jetclass_arrays(pf, jf, seed=1), clusters=max(1, jets // 5000))
    else:
        write_root(path, "tree", jetclass_arrays(pf, jf, seed=1), baskets=max(1, jets // 5000))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets", type=int, default=100_000)
    ap.add_argument("--step", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--format", choices=["ttree", "rntuple"], default="ttree")
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    import uproot
    from distributed import Client, LocalCluster

    from pcdata.ingest import IngestOptions, ingest_root

    path = make_input(args.workdir, args.jets, args.format)
    size_mb = path.stat().st_size / 1e6

    def plain_read() -> float:
        t = time.perf_counter()
        with uproot.open(path) as f:
            arrays = f["tree"].arrays(filter_name=BRANCHES, library="ak")
        assert len(arrays) == args.jets
        return time.perf_counter() - t

    limit = min(plain_read() for _ in range(args.repeat + 1))
    print(f"input: {path} ({args.jets:,} jets, {size_mb:,.0f} MB compressed)")
    print(f"{'what':<34}{'seconds':>9}{'jets/s':>11}{'MB/s':>8}{'vs uproot':>11}")
    print(f"{f'uproot {args.format} .arrays (baseline)':<34}{limit:>9.2f}{args.jets / limit:>11,.0f}{size_mb / limit:>8.0f}{1.0:>11.2f}")
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster):
            best = float("inf")
            for _ in range(args.repeat):
                out = args.workdir / f"root-store-{workers}w"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                store = ingest_root([path], out, tree="tree", cluster=cluster.scheduler_address, options=IngestOptions(rows_per_fragment=args.step, progress=False))
                best = min(best, time.perf_counter() - t)
        assert store.num_clouds == args.jets
        label = f"ingest, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{label:<34}{best:>9.2f}{args.jets / best:>11,.0f}{size_mb / best:>8.0f}{limit / best:>11.2f}")


if __name__ == "__main__":
    main()
