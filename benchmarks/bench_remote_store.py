"""Benchmark: reading a store over HTTP against reading it from the local disk.

The same jet store (synthetic jets of 30-110 particles, 50,000 clouds per fragment, points chunks
of 65,536 rows; raw chunks, the jets' default, and lz4) is read

* **local**: from its directory, page cache warm (the loader then maps raw chunks);
* **http**: from a server on 127.0.0.1 answering Range requests (the test suite's
  ``ThreadingHTTPServer``, Python: a floor for what nginx or XRootD's HTTP would serve; the
  network itself is loopback, so this measures the request path, not a link).

Figures: seconds to open the store and count its clouds; a random ``take`` of 1,000 clouds; one
shuffled epoch of the ``PointCloudLoader`` (batch 256, padded to 150) in-process and with 2
worker processes, clouds/s; and the bytes the server sent against the store's size.

    python benchmarks/bench_remote_store.py [--jets 300000] [--workdir /tmp/pcdata-bench-remote]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test suite's HTTP server

from benchmarks.bench_loader import build, jet_clouds  # noqa: E402
from pcdata import open_store  # noqa: E402
from pcdata.loaders import PointCloudLoader  # noqa: E402
from tests.range_server import serve_dir  # noqa: E402


def epoch(ref: str | Path, workers: int) -> tuple[float, int]:
    loader = PointCloudLoader(ref, split="train", batch_size=256, seed=0, num_workers=workers, pad=150)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += batch["points"].shape[0]
    return time.perf_counter() - t0, n


def measure(label: str, ref: str | Path, server=None) -> dict:
    out = {}
    t0 = time.perf_counter()
    store = open_store(ref)
    _ = store.num_clouds, store.fragments
    out["open"] = time.perf_counter() - t0
    idx = np.random.default_rng(1).choice(store.num_clouds, 1000, replace=False)
    if server is not None:
        server.reset()
    t0 = time.perf_counter()
    store.take(idx)
    out["take"] = time.perf_counter() - t0
    if server is not None:
        out["take_bytes"] = sum(server.sent.values())
    for workers in (0, 2):
        epoch(ref, workers)  # warm: page cache, worker start-up paths
        s, n = epoch(ref, workers)
        out[f"epoch{workers}"] = n / s
    print(f"  {label:<22} open {out['open']:6.3f} s   take 1,000 {out['take']:6.3f} s   "
          f"epoch {out['epoch0']:>9,.0f} clouds/s (in-process) {out['epoch2']:>9,.0f} (2 workers)"
          + (f"   take fetched {out['take_bytes'] / 1e6:.1f} MB" if "take_bytes" in out else ""), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jets", type=int, default=300_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/pcdata-bench-remote"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    clouds, source = jet_clouds(args.jets)
    for cname in ("none", "lz4"):
        path = build(args.workdir, f"jets{args.jets}", clouds, "jets", cname)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        print(f"\n{source}: {len(clouds):,} jets, chunks {cname}, store {size / 1e6:.0f} MB")
        local = measure("local", path)
        with serve_dir(path.parent) as server:
            remote = measure("http (127.0.0.1)", f"{server.url}/{path.name}", server)
        print(f"  http / local: epoch {remote['epoch0'] / local['epoch0']:.0%} in-process, "
              f"{remote['epoch2'] / local['epoch2']:.0%} with 2 workers")


if __name__ == "__main__":
    main()
