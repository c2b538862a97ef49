"""Benchmark: EPiC-FM and EPiC-JeDi on Pythia top30 jets, quality and speed on this machine.

1. ``--jets`` Pythia 8 top jets (30 particles) generated once (``bench-data/t30-<N>.hdf5``) and
   ingested into a store (70/15/15 split).
2. Each model trained with its small CPU config (``pcmodels/configs/*-small.yaml``) for
   ``--epochs`` epochs: training clouds/s from the trainer.
3. Sampling cost in ms per jet for each solver and step count on ``--timing-jets`` jets.
4. ``--num`` jets sampled with the config's solver and scored against as many test-split jets:
   W1M, W1P, W1EFP, FPD, KPD, KL next to the real-vs-real floor (from the report) and the published
   numbers of FACTS.md.

    python benchmarks/bench_pcmodels.py [--jets 50000] [--epochs 10] [--num 5000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--num", type=int, default=5000)
    ap.add_argument("--timing-jets", type=int, default=256)
    ap.add_argument("--models", default="epic-fm,epic-jedi")
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from pcdata.generate.jets import generate_jets
    from pcdata.ingest import ingest_jetnet
    from pcmodels.evaluation.jets import evaluate
    from pcmodels.sampling import generate_clouds, sample
    from pcmodels.training import load_config, train

    raw = args.workdir / f"t30-{args.jets}.hdf5"
    if not raw.exists():
        generate_jets(raw, process="top", num_jets=args.jets, num_particles=30, seed=11, workers=2)
    store = args.workdir / f"t30-{args.jets}.zarr"
    if not store.exists():
        ingest_jetnet([raw], store, label="t", workers=2, progress=False)
    results = {}
    for model in args.models.split(","):
        config = load_config(f"pcmodels/configs/{model}-small.yaml", epochs=args.epochs)
        run = args.workdir / f"run-{model}-{args.jets}-{args.epochs}"
        t0 = time.perf_counter()
        r = train(store, run, config, progress=True)
        train_s = time.perf_counter() - t0
        timing = {}
        solvers = ("euler", "midpoint", "rk4") if model == "epic-fm" else ("ddim", "ddpm", "midpoint")
        for solver in solvers:
            for steps in (25, 50, 100):
                _, t = generate_clouds(run, args.timing_jets, solver=solver, steps=steps, progress=False)
                timing[f"{solver}-{steps}"] = t["ms_per_cloud"]
        gen = args.workdir / f"gen-{model}.zarr"
        shutil.rmtree(gen, ignore_errors=True)
        s = sample(run, args.num, gen, progress=False)
        report = evaluate(store, gen, args.workdir / f"report-{model}", num=args.num, progress=False)
        results[model] = {"train_seconds": train_s, "train_clouds_per_s": r.clouds_per_second, "steps": r.steps,
                          "val_loss": r.val_loss, "parameters": r.parameters, "sample": s, "ms_per_jet": timing,
                          "metrics": report}
        print(json.dumps({k: v for k, v in results[model].items() if k != "metrics"}, indent=1))
    (args.workdir / "pcmodels-bench.json").write_text(json.dumps(results, indent=1, default=str))
    for model, res in results.items():
        m = res["metrics"]
        print(f"\n{model}: {res['parameters']:,} parameters, {res['train_clouds_per_s']:,.0f} jets/s training")
        for name in ("w1m", "w1p", "w1efp", "fpd", "kpd", "kl"):
            gen_v, floor_v = m.get(name), m.get("floor", {}).get(name)
            if gen_v is not None:
                print(f"  {name:6s} generated {json.dumps(gen_v)}   floor {json.dumps(floor_v)}")
        print("  ms/jet:", ", ".join(f"{k} {v:.1f}" for k, v in res["ms_per_jet"].items()))


if __name__ == "__main__":
    main()
