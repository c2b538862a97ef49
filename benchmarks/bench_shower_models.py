"""Benchmark: the shower models (CaloPointFlow II, MDMA) on parametrised showers, at equal CPU time.

For each dataset (``--datasets``, default ds2 and ds3):

1. Parametrised showers generated once (``bench-data/showers-<ds>-<N>.hdf5``) and ingested with
   splits train / val / test (ds2: 26,300 showers, about 20k train and 5k test).
2. Each model trained with its small CPU config for the same wall time (``--minutes``, the
   trainer's ``train.max_minutes``), in a subprocess whose peak memory (max RSS) is recorded;
   training throughput (showers/s) from the run's log.
3. Generation cost in ms per shower at batch 100 and 1,000, best of 2 (generation runs in passes
   sorted by hit count under the point cap, so a batch of 1,000 ds3 showers fits in memory).
4. As many showers as the test split holds (``--num``) generated for the test split's incident
   energies, written as an official CaloChallenge file, scored by the CaloChallenge evaluation
   (low/high-level classifier AUC, FPD, KPD, separation powers) beside the real-vs-real floor.

The showers are not Geant4: compare the models with each other and with the floor, never with
the official CaloChallenge table.

    python benchmarks/bench_shower_models.py [--minutes 10] [--datasets ds2,ds3] [--models calopointflow,mdma,deeptree]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = {"ds2": (26_300, 2500), "ds3": (5_000, 500)}
CONFIGS = {"calopointflow": "small", "mdma": "small-showers", "deeptree": "small-showers"}
HEADLINE = ("E layer", "Etot / Einc", "EC Eta", "EC Phi", "EC r", "Width Eta", "Width Phi", "Width r", "Sparsity")


def _train(store: Path, run: Path, config: Path, minutes: float) -> dict:
    """Train in a subprocess; its wall time, peak RSS and the logged throughput."""
    cmd = [sys.executable, "-m", "cli.pcmodels", "train", "--store", str(store), "--out", str(run), "--config",
           str(config), "--epochs", "100", "--set", f"train.max_minutes={minutes}", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"training failed: {' '.join(cmd)}")
    return {"wall_s": time.perf_counter() - t0, "peak_rss_gib": usage.ru_maxrss / 2**20, **_logged(run)}


def _logged(run: Path) -> dict:
    """Steps and the last logged throughput of a run."""
    rows = list(csv.reader((run / "log.csv").open()))
    rate = [float(r[2]) for r in rows[1:] if r[1] == "clouds_per_s"]
    return {"steps": max(int(r[0]) for r in rows[1:]), "showers_per_s": rate[-1] if rate else None}


def _ms_per_shower(run: Path, batch: int, num: int, reps: int = 2) -> float:
    from pcmodels.sampling import generate_clouds

    best = float("inf")
    for _ in range(reps):
        _, t = generate_clouds(run, num, batch_size=batch, incident="log-uniform", progress=False)
        best = min(best, t["ms_per_cloud"])
    return best


def _headline(report: dict) -> dict:
    def numbers(r):
        sep = r["separation_power_mean"]
        return {"auc_low": r["auc_low"], "auc_high": r["auc_high"], "fpd_x1e3": r["fpd"]["value"],
                "fpd_err": r["fpd"]["error"], "kpd_x1e3": r["kpd"]["value"], "kpd_err": r["kpd"]["error"],
                **{f"sep {k}": sep[k] for k in HEADLINE}}

    return {"model": numbers(report), "floor": numbers(report["floor"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time per model (ds3: half)")
    ap.add_argument("--datasets", default="ds2,ds3")
    ap.add_argument("--models", default="calopointflow,mdma", help="comma-separated; also deeptree")
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs in --workdir")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from pcdata import open_store
    from pcdata.generate.showers import generate_showers
    from pcdata.ingest import IngestOptions, ingest_calochallenge
    from pcdata.store import SplitSpec
    from pcmodels.evaluation import evaluate_showers
    from pcmodels.registry import get_model
    from pcmodels.run import Run
    from pcmodels.sampling import sample

    results: dict = {}
    out_json = args.workdir / "shower-models.json"
    if out_json.exists():
        results = json.loads(out_json.read_text())
    for ds in args.datasets.split(","):
        n, num = SIZES[ds]
        raw = args.workdir / f"showers-{ds}-{n}.hdf5"
        if not raw.exists():
            generate_showers(raw, geometry=ds, num_showers=n, seed=5, workers=2, progress=False)
        store_path = args.workdir / f"showers-{ds}-{n}.zarr"
        if not store_path.exists():
            ingest_calochallenge([raw], store_path, geometry=ds, cluster={"workers": 2}, options=IngestOptions(progress=False, splits=SplitSpec((("train", 0.76), ("val", 0.04), ("test", 0.2)))))
        store = open_store(store_path)
        sizes = {s: len(store.split_indices(s)) for s in ("train", "val", "test")}
        minutes = args.minutes if ds == "ds2" else args.minutes / 2
        for model in args.models.split(","):
            key = f"{ds}/{model}"
            run = args.workdir / f"run-showers-{ds}-{model}"
            entry = results.get(key, {}) if args.reuse else {}
            config = get_model(model).config_path(CONFIGS[model])
            if args.reuse and run.exists() and "train" not in entry:
                # A finished run without its entry: throughput from its log, peak memory from a 1-minute probe.
                probe = args.workdir / f"probe-showers-{ds}-{model}"
                shutil.rmtree(probe, ignore_errors=True)
                memory = _train(store_path, probe, config, 1.0)["peak_rss_gib"]
                shutil.rmtree(probe, ignore_errors=True)
                entry = {"train": {**_logged(run), "peak_rss_gib": memory, "wall_s": None}}
            elif not (args.reuse and run.exists() and "train" in entry):
                shutil.rmtree(run, ignore_errors=True)
                entry = {"train": _train(store_path, run, config, minutes)}
            entry["minutes"], entry["sizes"] = minutes, sizes
            entry["parameters"] = Run.open(run).load_method()[0].parameters()
            entry["ms_per_shower"] = {"100": _ms_per_shower(run, 100, 300 if ds == "ds3" else 1000),
                                      "1000": _ms_per_shower(run, 1000, 1000)}
            gen = args.workdir / f"gen-showers-{ds}-{model}.hdf5"
            sample(run, num, gen, fmt="calochallenge-hdf5", incident=str(store_path), progress=False)
            report_dir = args.workdir / f"report-showers-{ds}-{model}"
            shutil.rmtree(report_dir, ignore_errors=True)
            report = evaluate_showers(str(store_path), str(gen), report_dir, split="test", num=num, progress=False)
            entry["metrics"] = _headline(report)
            results[key] = entry
            out_json.write_text(json.dumps(results, indent=1))
            print(key, json.dumps(entry, indent=1), flush=True)


if __name__ == "__main__":
    main()
