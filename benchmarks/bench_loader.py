"""Benchmark: the streaming loader against an in-memory padded tensor and a per-item h5py Dataset.

Two stores:

* **jets**, JetNet150-sized: the lead's ``bench-data/t150-177945.hdf5`` (178k Pythia top jets, up
  to 150 particles) when it exists, else synthetic jets of 30-110 particles; batches padded to 150.
* **showers**, CaloChallenge-ds2-like: ``--showers`` clouds of (layer, alpha, r, energy) with about
  1500 hits (integer cells, exponential energies); batches padded to the longest shower of the
  store, or to the batch's longest with multiplicity bucketing.

For each, clouds/s and MB/s (bytes of the padded ``points`` + ``mask`` produced) of shuffled
batches, from a warm page cache (one pass first), best of ``--repeat`` passes:

* **limit**: random batches indexed out of a padded torch tensor already in memory;
* **pcdata**: :class:`PointCloudLoader` streaming the lz4 store (in-process, and with 2 worker
  processes), with ``cache=True`` (decoded once, then indexed in memory), and streaming a store of
  raw chunks (``--compression none``, the jets' default), mapped from the page cache;
* **h5py**: the per-item Dataset the field usually writes (``__getitem__`` reads one jet, or one
  shower's voxels, from the HDF5 file) under a DataLoader with ``batch_size``, shuffled.

    python benchmarks/bench_loader.py [--workdir /tmp/pcdata-bench-loader] [--showers 30000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from pcdata import Clouds, open_store
from pcdata.loaders import PointCloudLoader, WorkerOptions
from pcdata.store import ChunkSpec, Feature, StoreMeta, write_store

LEAD_FILE = Path(__file__).resolve().parent.parent / "bench-data" / "t150-177945.hdf5"


# -- inputs ----------------------------------------------------------------------------------------
def jet_clouds(n_synthetic: int, seed: int = 0) -> tuple[Clouds, str]:
    if LEAD_FILE.exists():
        from pcdata.sources.jetnet import inspect_jetnet_file, read_jetnet_block

        f = inspect_jetnet_file(LEAD_FILE, label=2)
        parts = [read_jetnet_block(f, a, min(a + 50_000, f.n_jets)) for a in range(0, f.n_jets, 50_000)]
        return Clouds.concat(parts), f"{LEAD_FILE.name} (Pythia top jets)"
    rng = np.random.default_rng(seed)
    counts = rng.integers(30, 111, n_synthetic)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pts = rng.normal(0, 0.1, (off[-1], 3)).astype(np.float32)
    pts[:, 2] = rng.exponential(0.02, off[-1])
    fields = {"pt": rng.normal(1000, 50, n_synthetic).astype(np.float32), "num_particles": counts.astype(np.int32)}
    return Clouds(pts, off, fields, ("etarel", "phirel", "ptrel")), "synthetic jets, 30-110 particles"


def shower_clouds(n: int, seed: int = 1) -> Clouds:
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.normal(1500, 300, n), 300, 3000).astype(np.int64)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    m = int(off[-1])
    pts = np.empty((m, 4), dtype=np.float32)
    pts[:, 0] = rng.integers(0, 45, m)
    pts[:, 1] = rng.integers(0, 16, m)
    pts[:, 2] = rng.integers(0, 9, m)
    pts[:, 3] = rng.exponential(5.0, m)
    return Clouds(pts, off, {"energy_in": rng.uniform(1e3, 1e6, n).astype(np.float32)}, ("layer", "alpha", "r", "energy"))


def build(workdir: Path, name: str, clouds: Clouds, kind: str, cname: str = "lz4") -> Path:
    path = workdir / f"{name}{'' if cname == 'lz4' else '-' + cname}.zarr"
    if path.exists():
        return path
    meta = StoreMeta(kind=kind, coords="bench", point_features=tuple(Feature(f) for f in clouds.point_features),
                     cloud_features=tuple(Feature(k, dtype=str(v.dtype)) for k, v in clouds.fields.items()),
                     fingerprint=f"bench-{name}")
    write_store(path, clouds, meta, clouds_per_fragment=50_000, chunks=ChunkSpec(cname=cname))
    return path


def jet_hdf5(workdir: Path, clouds: Clouds) -> Path:
    """The JetNet layout (padded particle_features [N, 150, 4] with the mask last)."""
    if LEAD_FILE.exists():
        return LEAD_FILE
    path = workdir / "jets.hdf5"
    if not path.exists():
        p = clouds.padded(150)
        pf = np.concatenate([p.points, p.mask[..., None].astype(np.float32)], axis=-1)
        with h5py.File(path, "w") as f:
            f.create_dataset("particle_features", data=pf, chunks=(1024, 150, 4))
    return path


def shower_hdf5(workdir: Path, n: int) -> Path:
    """The CaloChallenge ds2 layout: showers [N, 6480] voxel energies (per-item rows of 26 kB)."""
    path = workdir / f"showers-{n}.hdf5"
    if not path.exists():
        rng = np.random.default_rng(2)
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("showers", shape=(n, 6480), dtype="float32", chunks=(100, 6480))
            for a in range(0, n, 5000):
                block = np.zeros((min(5000, n - a), 6480), np.float32)
                hits = rng.random(block.shape) < 1500 / 6480
                block[hits] = rng.exponential(5.0, int(hits.sum()))
                ds[a : a + len(block)] = block
    return path


# -- timing ----------------------------------------------------------------------------------------
# Each reader is a function running one pass and returning (clouds, bytes, seconds, seconds to the
# first batch); passes of all readers are interleaved round by round and the best pass of each
# is kept, so that load from other processes on the machine hits every reader alike.


def limit_pass(clouds: Clouds, pad: int, batch_size: int):
    p = clouds.padded(pad)
    points, mask = torch.from_numpy(p.points), torch.from_numpy(p.mask)
    cloud = torch.from_numpy(np.stack([v.astype(np.float32) for v in clouds.fields.values()], 1))
    rounds = iter(range(1 << 30))

    def run():
        perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(next(rounds)))
        t0, n, nbytes = time.perf_counter(), 0, 0
        for batch in perm.split(batch_size):
            x, m, c = points[batch], mask[batch], cloud[batch]
            n, nbytes = n + len(batch), nbytes + x.nbytes + m.nbytes
        return n, nbytes, time.perf_counter() - t0, 0.0

    return run


def loader_pass(loader: PointCloudLoader):
    def run():
        loader.set_epoch(loader.epoch)  # a whole epoch each time (the next epoch: another order)
        t0 = time.perf_counter()
        n = nbytes = 0
        t1 = None
        for batch in loader:
            if t1 is None:  # steady state from the first batch on; start-up reported apart
                t1 = time.perf_counter()
                continue
            n += len(batch["index"])
            nbytes += batch["points"].nbytes + batch["mask"].nbytes
        return n, nbytes, time.perf_counter() - t1, t1 - t0

    return run


class H5Items(torch.utils.data.Dataset):
    """What a typical training script does: open the file lazily, read one item per __getitem__."""

    def __init__(self, path: Path, key: str):
        self.path, self.key, self._ds = str(path), key, None
        with h5py.File(self.path) as f:
            self.n = len(f[key])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._ds is None:
            self._ds = h5py.File(self.path)[self.key]
        return torch.from_numpy(self._ds[i])


def h5py_pass(path: Path, key: str, batch_size: int, workers: int, batches: int):
    def run():
        loader = torch.utils.data.DataLoader(H5Items(path, key), batch_size=batch_size, shuffle=True,
                                             num_workers=workers)
        t0 = time.perf_counter()
        it = iter(loader)
        next(it)
        t1, n, nbytes = time.perf_counter(), 0, 0
        for _, batch in zip(range(batches), it):
            n, nbytes = n + len(batch), nbytes + batch.nbytes
        return n, nbytes, time.perf_counter() - t1, t1 - t0

    return run


# -- report ----------------------------------------------------------------------------------------
def bench(name: str, store_path: Path, raw_store: Path, clouds: Clouds, pad: int, batch_size: int, h5: Path, h5_key: str,
          repeat: int, bucket: int | None, h5_batches: int) -> None:
    store = open_store(store_path)
    kw = dict(split=None, batch_size=batch_size, pad=pad)
    opts = WorkerOptions(prefetch=4)
    readers = {f"limit: in-memory padded tensor [{len(clouds)}, {pad}, {clouds.points.shape[1]}]":
               limit_pass(clouds, pad, batch_size)}
    for label, extra in (("pcdata streaming, in-process", {}),
                         ("pcdata streaming, 2 workers", {"num_workers": 2}),
                         ("pcdata cache=True, in-process", {"cache": True}),
                         ("pcdata cache=True, 2 workers", {"cache": True, "num_workers": 2})):
        readers[f"{label}, pad={pad}"] = loader_pass(PointCloudLoader(store, worker_options=opts, **kw, **extra).preload())
    raw = open_store(raw_store)
    readers[f"pcdata streaming, in-process, pad={pad}, raw chunks (mapped)"] = loader_pass(PointCloudLoader(raw, **kw))
    if bucket:
        loader = PointCloudLoader(store, split=None, batch_size=batch_size, bucket=bucket)
        readers[f"pcdata streaming, in-process, pad=batch, bucket={bucket}"] = loader_pass(loader)
    for workers in (0, 2):
        readers[f"h5py per-item Dataset ({h5_key}), {workers} workers"] = h5py_pass(h5, h5_key, batch_size, workers, h5_batches)
    best: dict[str, tuple[float, float, float]] = {}
    for r in range(repeat + 1):  # round 0 warms the page cache and is not counted
        for label, run in readers.items():
            n, nbytes, seconds, start = run()
            if r and n / seconds > best.get(label, (0.0,))[0]:
                best[label] = (n / seconds, nbytes / seconds / 1e6, start)
    limit = next(iter(best.values()))[0]
    print(f"\n{name}: {len(clouds)} clouds, {clouds.num_points / len(clouds):.0f} points/cloud on average, "
          f"batch {batch_size}, best of {repeat} interleaved passes")
    print(f"  {'reader':<60} {'clouds/s':>11} {'MB/s':>8} {'of limit':>9} {'start s':>8}")
    for label, (cps, mbs, start) in best.items():
        print(f"  {label:<60} {cps:>11,.0f} {mbs:>8,.0f} {cps / limit:>8.0%} {start:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/pcdata-bench-loader"))
    ap.add_argument("--jets", type=int, default=177_945, help="synthetic jets when the lead's file is absent")
    ap.add_argument("--showers", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-showers", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; workdir {args.workdir}")

    t0 = time.perf_counter()
    jets, source = jet_clouds(args.jets)
    jet_store = build(args.workdir, "jets", jets, "jets")
    h5 = jet_hdf5(args.workdir, jets)
    print(f"jets: {source}; store and HDF5 ready in {time.perf_counter() - t0:.0f} s")
    bench("jets", jet_store, build(args.workdir, "jets", jets, "jets", cname="none"), jets, 150, 256, h5, "particle_features", args.repeat, None, 20)
    del jets

    if not args.skip_showers:
        t0 = time.perf_counter()
        showers = shower_clouds(args.showers)
        shower_store = build(args.workdir, f"showers-{args.showers}", showers, "showers")
        h5 = shower_hdf5(args.workdir, args.showers)
        print(f"\nshowers: store and HDF5 ready in {time.perf_counter() - t0:.0f} s")
        raw_store = build(args.workdir, f"showers-{args.showers}", showers, "showers", cname="none")
        bench("showers", shower_store, raw_store, showers, int(showers.counts.max()), 128, h5, "showers", args.repeat, 16, 10)


if __name__ == "__main__":
    main()
