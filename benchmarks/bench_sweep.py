"""What a sweep saves: a study's wall time against the same trials one after another, and the
training steps ASHA's early stopping spares.

Three runs of the same grid of EPiC-FM trials (``--config`` of the model, ``--steps`` steps each,
scored on ``--num`` jets of the val split):

1. ``sequential``: every trial trained and scored in this process, one after another, one thread
   each (as a worker runs it);
2. ``study``: ``pcmodels sweep`` with no pruner on a local cluster of ``--workers`` workers;
3. ``study + asha``: the same with ASHA (reduction factor 2, a report every ``--steps``/4 steps).

The store is made on the spot (synthetic JetNet-layout jets, ``--jets``) unless ``--store`` is given.
Every process is warmed first (imports, numba's compilations in the loader and in jetnet's KPD,
one tiny training and evaluation): that fixed cost, paid once per worker process, is reported on
its own (with the cluster's start), since a real trial lasts hours, not seconds.

    python benchmarks/bench_sweep.py [--workers 2] [--steps 60] [--num 200] [--out bench-data/sweep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

SPACE = {"optim.net.lr": [1.0e-5, 3.0e-3], "network.hidden": [16, 32], "network.layers": [1, 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--jets", type=int, default=3000)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-data/sweep"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import torch

    from pcmodels.sweep import load_study, run_study
    from pcmodels.sweep.scoring import score_run
    from pcmodels.sweep.study import trial_config

    store = args.store
    if store is None:
        from pcdata.ingest import IngestOptions, ingest_jetnet
        from tests.helpers import make_jetnet_file

        f = make_jetnet_file(args.out / "t.hdf5", args.jets, 30, seed=1)
        store = ingest_jetnet([f], args.out / "store.zarr", cluster={"workers": 1}, options=IngestOptions(progress=False)).path
    every = max(1, args.steps // 4)
    doc = {"store": str(store), "model": "epic-fm", "config": args.config, "space": SPACE, "sampler": "grid",
           "metric": "w1m", "budget": {"trials": 8, "steps": args.steps}, "pruner": "none",
           "evaluation": {"split": "val", "num": args.num}, "cluster": {"workers": args.workers}}
    rows = {}

    # 1. One after another, in this process, one thread (as in a worker).
    spec = load_study(_write(args.out / "sequential.yaml", doc))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    _warm(spec.store, str(args.out / "warm-main"))
    warm_main = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, values in enumerate(itertools.product(*SPACE.values())):
        params = dict(zip(SPACE, values))
        from pcmodels.training import train

        run = args.out / "sequential" / f"{i:04d}"
        train(spec.store, run, trial_config(spec, params), progress=False)
        score_run(run, spec.store, split=spec.split, num=spec.num, seed=spec.seed)
    rows["sequential"] = {"seconds": time.perf_counter() - t0, "steps": 8 * args.steps, "pruned": 0}
    print(f"sequential: {rows['sequential']['seconds']:.0f} s", flush=True)

    # 2. and 3. The study, without and with early stopping, on one cluster warmed first.
    from pcdata.cluster import ClusterSpec, connect

    t0 = time.perf_counter()
    with connect(ClusterSpec(workers=args.workers)) as client:
        started = time.perf_counter() - t0
        client.run(_warm, spec.store, str(args.out / "warm"))
        warm_workers = time.perf_counter() - t0
        print(f"cluster start {started:.0f} s, + warm-up {warm_workers:.0f} s (this process: {warm_main:.0f} s)",
              flush=True)
        for name, pruner in (("study", "none"), ("study + asha", {"name": "asha", "every": every,
                                                                  "reduction_factor": 2})):
            path = _write(args.out / f"{name.replace(' + ', '-')}.yaml", {**doc, "pruner": pruner})
            result = run_study(path, client=client, progress=False)
            steps = sum(t["step"] or 0 for t in result.trials)
            rows[name] = {"seconds": result.seconds, "steps": steps,
                          "pruned": sum(t["state"] == "pruned" for t in result.trials),
                          "best": result.best["value"] if result.best else None}
            print(f"{name}: {result.seconds:.0f} s, {steps} steps", flush=True)

    base = rows["sequential"]
    lines = ["| run | wall time | speed-up | steps trained | steps saved | pruned |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['seconds']:.0f} s | {base['seconds'] / r['seconds']:.2f}x | {r['steps']} | "
                     f"{1 - r['steps'] / base['steps']:.0%} | {r['pruned']} of 8 |")
    lines.append(f"\nfixed cost: local cluster of {args.workers} started in {started:.0f} s, its workers warmed in "
                 f"{warm_workers - started:.0f} s (in parallel); this process warmed in {warm_main:.0f} s")
    (args.out / "bench_sweep.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                           "rows": rows, "cluster_start_s": started,
                                                           "worker_warmup_s": warm_workers - started,
                                                           "process_warmup_s": warm_main}, indent=1))
    print("\n".join(lines))


def _warm(store: str, where: str) -> None:
    """Pay a process's one-time costs: imports, numba's compilations, a tiny training and scoring."""
    import os

    import torch

    from pcmodels.config import load_config
    from pcmodels.registry import get_model
    from pcmodels.sweep.scoring import score_run
    from pcmodels.training import train

    torch.set_num_threads(1)
    run = Path(where) / str(os.getpid())
    train(store, run, load_config(get_model("epic-fm").config_path("tiny"), steps=2), progress=False)
    score_run(run, store, split="val", num=50, seed=0)


def _write(path: Path, doc: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


if __name__ == "__main__":
    main()
