"""Benchmark: CaloChallenge ingest (voxels -> hit clouds -> store) on 1 and 2 Dask workers.

For each geometry (generated files, GFlash-style showers in the official layout):

- ``h5py read (limit)``: read the whole file in the ingest's row blocks in this process and do
  nothing else: the decompression limit of one core;
- ``read + convert``: the same blocks read, checked and turned into hit clouds in this process,
  nothing written (the conversion's own cost);
- ``ingest, N workers``: :func:`pcdata.ingest.ingest_calochallenge` on a LocalCluster started
  beforehand (cluster start-up is not counted; everything else is: validation, reading,
  conversion, writing fragments, statistics, file checksums);
- ``ingest, GPU``: the same on a dask-cuda LocalCUDACluster where a CUDA GPU is available.

Rates are showers/s and MB/s of uncompressed voxel data (N x n_voxels x 4 bytes). Peak memory is
each worker's maximum resident set (``ru_maxrss``, fresh workers per run) next to the file's size:
the file is streamed in blocks, so it should stay far below the raw size of a large file.

    python benchmarks/bench_ingest_calochallenge.py [--ds2 10000] [--ds3 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

MB = 1e6


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB


def make_file(geometry: str, n: int, workdir: Path) -> Path:
    from pcdata.generate.showers import generate_showers

    path = workdir / f"{geometry}-{n}.hdf5"
    if not path.exists():
        t = time.perf_counter()
        generate_showers(path, geometry=geometry, num_showers=n, seed=1, workers=min(2, os.cpu_count() or 1),
                         progress=False)
        print(f"  generated {path.name} in {time.perf_counter() - t:.0f} s")
    return path


def read_only(path: Path, n_voxels: int) -> float:
    import h5py

    from pcdata.sources.calochallenge import default_block_rows

    block = default_block_rows(n_voxels)
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        n = f["showers"].shape[0]
        for lo in range(0, n, block):
            f["incident_energies"][lo : lo + block]
            f["showers"][lo : lo + block]
    return time.perf_counter() - t


def convert_only(path: Path, geometry: str) -> float:
    """Read, check and convert every block in this process, writing nothing: the conversion cost
    without the store (Zarr compression, statistics) and without Dask."""
    from pcdata.sources.calochallenge import CaloChallengeShowers
    from pcdata.sources.calochallenge import default_block_rows, inspect_calochallenge_file

    info = inspect_calochallenge_file(path, geometry)
    block = default_block_rows(info.n_voxels)
    source = CaloChallengeShowers((info,), geometry, block)
    t = time.perf_counter()
    for lo in range(0, info.n_showers, block):  # one block at a time, as the workers do
        source.read(0, lo, min(info.n_showers, lo + block))
    return time.perf_counter() - t


def ingest(path: Path, geometry: str, out: Path, *, workers: int, gpu: bool = False) -> tuple[float, list[float], int]:
    """Seconds, peak RSS per worker (MB), points stored."""
    from distributed import Client, LocalCluster

    from pcdata.ingest import IngestOptions, ingest_calochallenge

    if gpu:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(dashboard_address=None, silence_logs=logging.ERROR)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(len(cluster.workers))
            t = time.perf_counter()
            store = ingest_calochallenge([path], out, geometry=geometry, gpu=gpu, cluster=cluster.scheduler_address, options=IngestOptions(overwrite=True, progress=False))
            seconds = time.perf_counter() - t
            peaks = sorted(client.run(_maxrss_mb).values())
    finally:
        cluster.close()
    return seconds, peaks, store.num_points


def _has_gpu() -> bool:
    try:
        import dask_cuda  # noqa: F401
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def bench(geometry: str, n: int, workdir: Path) -> None:
    from pcdata.geometry.calo import get_geometry

    nv = get_geometry(geometry).n_voxels
    path = make_file(geometry, n, workdir)
    raw, size = n * nv * 4 / MB, path.stat().st_size / MB
    print(f"\n{geometry}: {n} showers x {nv} voxels = {raw:,.0f} MB raw float32, file {size:,.0f} MB (gzip)")
    rows = []
    t = min(read_only(path, nv) for _ in range(2))
    rows.append(("h5py read (limit, 1 process)", t, None, None))
    rows.append(("read + convert (1 process)", convert_only(path, geometry), None, None))
    for w in (1, 2):
        s, peaks, points = ingest(path, geometry, workdir / f"{geometry}-{w}.zarr", workers=w)
        rows.append((f"ingest, {w} worker{'s' if w > 1 else ''}", s, peaks, points))
    if _has_gpu():
        s, peaks, points = ingest(path, geometry, workdir / f"{geometry}-gpu.zarr", workers=1, gpu=True)
        rows.append(("ingest, GPU (dask-cuda)", s, peaks, points))
    else:
        print("  GPU path: no GPU (torch.cuda.is_available() is False or dask-cuda missing)")
    from _limits import store_bytes, write_raw

    stored = store_bytes(workdir / f"{geometry}-2.zarr")
    limit = rows[0][1] + write_raw(stored, workdir)
    print(f"  store: {stored / MB:,.0f} MB; the limit = h5py read + a raw write of the store's bytes (fsynced): {limit:.2f} s")
    base = rows[2][1]
    for name, secs, peaks, points in rows:
        line = f"  {name:<30}{n / secs:9,.0f} showers/s {raw / secs:8,.0f} MB/s {limit / secs:5.2f} of limit"
        if peaks is not None:
            line += (f"   {base / secs:4.2f}x 1 worker; peak RSS/worker {', '.join(f'{p:,.0f}' for p in peaks)} MB"
                     f" (file {size:,.0f} MB, raw {raw:,.0f} MB); {points / n:,.0f} hits/shower")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ds2", type=int, default=10000, help="ds2 showers (0 to skip)")
    parser.add_argument("--ds3", type=int, default=5000, help="ds3 showers (0 to skip; 5000 = 0.8 GB raw)")
    parser.add_argument("--keep", type=Path, default=None, help="directory for the generated files (reused)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at start (other jobs share this machine)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for geometry, n in (("ds2", args.ds2), ("ds3", args.ds3)):
            if n:
                bench(geometry, n, workdir)


if __name__ == "__main__":
    main()
