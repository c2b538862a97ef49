"""Benchmark: JetNet ingest throughput against just reading the same arrays with h5py.

A JetNet150-sized file (178k jets x 150 particles, like t150.hdf5) is made from Pythia 8 top jets:
``--base-jets`` jets are generated with ``pcdata generate jets`` and repeated to the full size
(repeats are thousands of jets apart, farther than a compression chunk, so they do not flatter the
compressor). The limit is the time to read both datasets into memory with h5py, from a warm page
cache; ingest is timed on a running LocalCluster with 1 and 2 worker processes (cluster start-up
reported apart), best of ``--repeat`` runs.

    python benchmarks/bench_ingest_jetnet.py [--jets 177945] [--base-jets 4000] [--workdir bench-data]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path

import h5py


def make_input(workdir: Path, jets: int, base_jets: int) -> Path:
    from pcdata.generate.jets import generate_jets
    from pcdata.sources.jetnet import JetNetWriter

    big = workdir / f"t150-{jets}.hdf5"
    if big.exists():
        return big
    base = workdir / f"t150-base-{base_jets}.hdf5"
    if not base.exists():
        generate_jets(base, process="top", num_jets=base_jets, num_particles=150, seed=7, workers=2)
    with h5py.File(base) as f:
        pf, jf = f["particle_features"][:], f["jet_features"][:]
    with JetNetWriter(big, n_jets=jets, num_particles=150) as w:
        for start in range(0, jets, len(pf)):
            n = min(len(pf), jets - start)
            w.write(start, pf[:n], jf[:n])
    return big


def h5py_read(path: Path) -> float:
    t = time.perf_counter()
    with h5py.File(path) as f:
        pf = f["particle_features"][:]
        jf = f["jet_features"][:]
    dt = time.perf_counter() - t
    assert pf.shape[0] == jf.shape[0]
    return dt


def stages(path: Path, workdir: Path) -> dict[str, float]:
    """Where the time goes: every step of an ingest, timed alone over the whole file in one process."""
    from dataclasses import replace

    import numpy as np

    from pcdata._io import file_sha256
    from pcdata.ingest.jetnet import default_rows_per_fragment, jetnet_template
    from pcdata.sources import jetnet as jn
    from pcdata.store import prepare_store
    from pcdata.store.format import fragment_id
    from pcdata.store.writer import JET_CHUNKS, content_checksum, fragment_moments

    src = jn.JetNetSource.open([path], label="t")
    file = src.files[0]
    rows = default_rows_per_fragment(file.num_particles)
    blocks = [(lo, min(file.n_jets, lo + rows)) for lo in range(0, file.n_jets, rows)]
    out = workdir / "stages-store"
    shutil.rmtree(out, ignore_errors=True)
    builder = prepare_store(out, replace(jetnet_template(file.num_particles), expected_fragments=len(blocks), layout=JET_CHUNKS))
    writer = builder.writer()
    jn.read_jetnet_block(file, 0, 2)  # the compiled kernels loaded (about 1 s, once per process) before timing
    t = dict.fromkeys(["h5py read", "validate + select real particles", "content sha256", "moments",
                       "write shards (fsynced)", "commit (manifest + root)", "input file sha256"], 0.0)
    for i, (lo, hi) in enumerate(blocks):
        c0 = time.perf_counter()
        with h5py.File(path) as f:
            pf = np.asarray(f["particle_features"][lo:hi], np.float32)
            jf = np.asarray(f["jet_features"][lo:hi], np.float32)
        c1 = time.perf_counter()
        code, _, n_real = jn._scan_kernel()(pf, jf, file.num_particles)
        clouds = jn.read_jetnet_block(file, lo, hi)  # (the same, with the read, for the writer below)
        c2 = time.perf_counter()
        content_checksum(clouds)
        c3 = time.perf_counter()
        fragment_moments(clouds, clouds.point_features)
        c4 = time.perf_counter()
        info = writer.write(fragment_id(i), clouds)
        c5 = time.perf_counter()
        builder.commit(info)
        c6 = time.perf_counter()
        t["h5py read"] += c1 - c0
        t["validate + select real particles"] += (c2 - c1) - (c1 - c0)  # read_jetnet_block reads again
        t["content sha256"] += c3 - c2
        t["moments"] += c4 - c3
        t["write shards (fsynced)"] += (c5 - c4) - (c4 - c2)  # write() computes checksum and moments again
        t["commit (manifest + root)"] += c6 - c5
    c0 = time.perf_counter()
    file_sha256(path)
    t["input file sha256"] = time.perf_counter() - c0
    builder.close()
    shutil.rmtree(out, ignore_errors=True)
    return t


def ingest_once(path: Path, out: Path, scheduler: str) -> float:
    from pcdata.ingest import IngestOptions, ingest_jetnet

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    ingest_jetnet([path], out, label="t", cluster=scheduler, options=IngestOptions(progress=False))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets", type=int, default=177_945)
    ap.add_argument("--base-jets", type=int, default=4000)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from distributed import Client, LocalCluster

    from pcdata import open_store

    path = make_input(args.workdir, args.jets, args.base_jets)
    size_mb = os.path.getsize(path) / 1e6
    with h5py.File(path) as f:
        n_jets = f["jet_features"].shape[0]
        n_real = int(sum(f["particle_features"][i : i + 20000, :, 3].sum() for i in range(0, n_jets, 20000)))
    limit = min(h5py_read(path) for _ in range(args.repeat + 1))  # first read warms the page cache
    print(f"input: {path} {n_jets:,} jets x 150 particles, {n_real:,} real particles, {size_mb:,.0f} MB; {os.cpu_count()} cores")
    print(f"{'what':<32}{'seconds':>9}{'jets/s':>12}{'MB/s':>9}{'vs h5py':>9}")
    print(f"{'h5py read (the limit)':<32}{limit:>9.2f}{n_jets / limit:>12,.0f}{size_mb / limit:>9.0f}{1.0:>9.2f}")
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster):
            startup = time.perf_counter() - t0
            out = args.workdir / f"store-{workers}w"
            best = min(ingest_once(path, out, cluster.scheduler_address) for _ in range(args.repeat))
        store = open_store(out)
        assert store.num_clouds == n_jets and store.num_points == n_real
        label = f"ingest, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{label:<32}{best:>9.2f}{n_jets / best:>12,.0f}{size_mb / best:>9.0f}{limit / best:>9.2f}"
              f"   (+{startup:.1f} s cluster start)")
    from _limits import store_bytes, write_raw

    stored = store_bytes(out)
    write = write_raw(stored, args.workdir)
    print(f"store on disk: {stored / 1e6:,.0f} MB ({size_mb / (stored / 1e6):.1f}x smaller than the HDF5 input); "
          f"raw write of those bytes + fsync: {write:.2f} s")
    print(f"the limit, read + raw write: {limit + write:.2f} s; ingest with 2 workers at {(limit + write) / best:.2f} of it")
    parts = stages(path, args.workdir)
    total = sum(parts.values())
    print(f"\nwhere the time goes (one process, every step alone; {total:.2f} s in all):")
    for name, secs in parts.items():
        print(f"  {name:<36}{secs:7.2f} s {100 * secs / total:5.0f} %")


if __name__ == "__main__":
    main()
