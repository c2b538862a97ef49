"""Benchmark: the store's metadata at 10^3, 10^4 and 10^5 fragments, and what that means at 10^9 clouds.

For each size, a synthetic JetNet-layout file of N jets (30 particles) is ingested with one jet per
fragment on a 2-worker LocalCluster (fragment data left to the page cache, ``fsync=False``; the
metadata commits are fsynced as always), so that the store's own bookkeeping dominates. Measured:

- commit cost per fragment: time the client spends in ``StoreBuilder.commit`` (log manifest and
  root rewrite) per fragment, and in ``finish`` (statistics, index manifests, clean-up);
- the root ``zarr.json`` size and the manifests' total size;
- ``open_store``: wall time and the Python memory it allocates (tracemalloc peak);
- the first read of one random cloud (loads one index manifest and one fragment);
- in a fresh process: opening the store and the first loader batch (256 jets), and the loader's
  index per cloud (the numpy arrays the store, the loader and its epoch plan hold);
- directory entries per fragment.

    python benchmarks/bench_store_scale.py [--sizes 1000 10000 100000] [--workdir bench-data/scale]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

FIRST_BATCH = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from pcdata.loaders import PointCloudLoader
from pcdata.store import open_store
t1 = time.perf_counter()
store = open_store(sys.argv[1])
loader = PointCloudLoader(store, split=sys.argv[2] if sys.argv[2] != "-" else None, batch_size=256, seed=1)
batch = next(iter(loader))
t2 = time.perf_counter()
# The loader's index: every numpy array reachable from the loader (its store, source, epoch plan,
# layout, windows and the store's cached fragments), each counted once.
seen, total = set(), 0
def count(value):
    global total
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        total += value.nbytes if value.base is None else 0
    elif isinstance(value, dict):
        [count(v) for v in value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        [count(v) for v in value]
    elif type(value).__module__.startswith("pcdata"):
        fields = dict(vars(value)) if hasattr(value, "__dict__") else {}
        fields.update({f: getattr(value, f, None) for f in getattr(value, "__slots__", ())})
        count(fields)
count(loader)
print(json.dumps({"import_s": t1 - t0, "first_batch_s": t2 - t1, "loader_bytes": total, "batch": int(batch["points"].shape[0])}))
"""


def make_jets(path: Path, n: int, seed: int = 0) -> Path:
    """A JetNet-layout file of ``n`` jets x 30 particles (random, valid layout; not physics)."""
    from pcdata.sources.jetnet import write_jetnet_hdf5

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 31, size=n)
    pf = np.zeros((n, 30, 4), np.float32)
    real = np.arange(30)[None, :] < k[:, None]
    pt = np.sort(rng.random((n, 30)).astype(np.float32), axis=1)[:, ::-1]
    pf[..., 0] = np.where(real, rng.normal(0, 0.2, (n, 30)), 0)
    pf[..., 1] = np.where(real, rng.normal(0, 0.2, (n, 30)), 0)
    pf[..., 2] = np.where(real, pt, 0)
    pf[..., 3] = real
    jf = np.stack([rng.uniform(500, 1000, n), rng.normal(0, 1, n), rng.uniform(50, 200, n), k], axis=1).astype(np.float32)
    write_jetnet_hdf5(path, pf, jf)
    return path


def measure(n: int, workdir: Path, scheduler: str) -> dict:
    from pcdata.ingest.jetnet import jetnet_template
    from pcdata.ingest import IngestOptions
    from pcdata.ingest.pipeline import run_ingest
    from pcdata.sources.jetnet import JetNetSource
    from pcdata.store import StoreBuilder, open_store
    from pcdata.store.writer import JET_CHUNKS

    src = JetNetSource.open([make_jets(workdir / f"t-{n}.hdf5", n)], label="t")
    out = workdir / f"store-{n}"
    shutil.rmtree(out, ignore_errors=True)
    spent = {"commit": 0.0, "finish": 0.0}
    real_commit, real_finish = StoreBuilder.commit, StoreBuilder.finish

    def commit(self, *infos):
        t = time.perf_counter()
        real_commit(self, *infos)
        spent["commit"] += time.perf_counter() - t

    def finish(self, **kw):
        t = time.perf_counter()
        try:
            return real_finish(self, **kw)
        finally:
            spent["finish"] += time.perf_counter() - t

    StoreBuilder.commit, StoreBuilder.finish = commit, finish
    try:
        t = time.perf_counter()
        run_ingest(src, out, jetnet_template(30), identity={}, cluster=scheduler,
                   options=IngestOptions(rows_per_fragment=1, chunks=JET_CHUNKS, progress=False, fsync=False))
        ingest_s = time.perf_counter() - t
    finally:
        StoreBuilder.commit, StoreBuilder.finish = real_commit, real_finish
    root = json.loads((out / "zarr.json").read_text())["attributes"]["pcdata"]
    manifests = sum(p.stat().st_size for p in (out / "manifests").rglob("*.json"))
    tracemalloc.start()
    t = time.perf_counter()
    store = open_store(out)
    open_s = time.perf_counter() - t
    open_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = time.perf_counter()
    store.take([int(np.random.default_rng(1).integers(n))])
    first_read_s = time.perf_counter() - t
    entries = sum(1 for _ in (out / "fragments").rglob("*"))
    loader = first_batch(out, None)
    return {"fragments": root["num_fragments"], "ingest_s": ingest_s, "commit_ms_per_fragment": 1e3 * spent["commit"] / n,
            "finish_s": spent["finish"], "root_bytes": (out / "zarr.json").stat().st_size, "manifest_bytes": manifests,
            "open_ms": 1e3 * open_s, "open_kb": open_bytes / 1e3, "first_read_ms": 1e3 * first_read_s,
            "first_batch_s": loader["first_batch_s"], "loader_bytes_per_cloud": loader["loader_bytes"] / n,
            "entries_per_fragment": entries / n}


def measure_clouds(n: int, per_fragment: int, workdir: Path, scheduler: str) -> dict:
    """The loader's index of a store of ``n`` jets in fragments of ``per_fragment``: what grows with clouds."""
    from pcdata.ingest.jetnet import jetnet_template
    from pcdata.ingest import IngestOptions
    from pcdata.ingest.pipeline import run_ingest
    from pcdata.sources.jetnet import JetNetSource
    from pcdata.store.writer import JET_CHUNKS

    out = workdir / f"clouds-{n}"
    if not (out / "zarr.json").exists():
        src = JetNetSource.open([make_jets(workdir / f"t-{n}.hdf5", n)], label="t")
        run_ingest(src, out, jetnet_template(30), identity={}, cluster=scheduler,
                   options=IngestOptions(rows_per_fragment=per_fragment, chunks=JET_CHUNKS, progress=False))
    return {"clouds": n, "fragments": n // per_fragment,
            **{f"{split or 'all'}": first_batch(out, split) for split in (None, "train")}}


def first_batch(store: Path, split: str | None) -> dict:
    """Open ``store`` and take the first loader batch in a fresh process."""
    fresh = subprocess.run([sys.executable, "-c", FIRST_BATCH, str(store), split or "-"], capture_output=True, text=True,
                           check=True)
    return json.loads(fresh.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--workdir", type=Path, default=Path("bench-data/scale"))
    ap.add_argument("--loader-only", action="store_true", help="only the loader columns, on stores written before")
    ap.add_argument("--clouds", type=int, default=2_000_000,
                    help="also the loader's index on a store of this many jets in fragments of 10^4 (0: skip)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.loader_only:
        for n in args.sizes:
            for split in (None, "train"):
                r = first_batch(args.workdir / f"store-{n}", split)
                print(f"{n:,} fragments, split {split}: first loader batch {r['first_batch_s']:.2f} s, loader index "
                      f"{r['loader_bytes']:,} B ({r['loader_bytes'] / n:.1f} B/cloud)")
        return
    from distributed import Client, LocalCluster

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster):
        for n in args.sizes:
            rows.append(measure(n, args.workdir, cluster.scheduler_address))
            print(json.dumps(rows[-1]), flush=True)
        if args.clouds:
            r = measure_clouds(args.clouds, 10_000, args.workdir, cluster.scheduler_address)
            for split in ("all", "train"):
                print(f"{r['clouds']:,} jets in {r['fragments']:,} fragments, split {split}: first loader batch "
                      f"{r[split]['first_batch_s']:.2f} s, loader index {r[split]['loader_bytes']:,} B "
                      f"({r[split]['loader_bytes'] / r['clouds']:.2f} B/cloud)", flush=True)
    print(f"\n{os.cpu_count()} cores; one jet per fragment\n")
    print("| fragments | ingest s | commit ms/fragment | finish s | root bytes | manifests MB | open ms | open kB "
          "| first read ms | first loader batch s | loader B/cloud | entries/fragment |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['fragments']:,} | {r['ingest_s']:.1f} | {r['commit_ms_per_fragment']:.3f} | {r['finish_s']:.2f} "
              f"| {r['root_bytes']:,} | {r['manifest_bytes'] / 1e6:.1f} | {r['open_ms']:.2f} | {r['open_kb']:.0f} "
              f"| {r['first_read_ms']:.1f} | {r['first_batch_s']:.2f} | {r['loader_bytes_per_cloud']:.0f} "
              f"| {r['entries_per_fragment']:.1f} |")


if __name__ == "__main__":
    main()
