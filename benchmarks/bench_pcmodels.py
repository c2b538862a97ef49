"""Benchmark: every registered jet model on Pythia top jets, quality at equal CPU wall time, and speed.

1. ``--jets`` Pythia 8 top jets (``--particles`` 30 or 150) generated once
   (``bench-data/t<P>-<N>.hdf5``) and ingested into a store (70/15/15 split).
2. Each model (``--models``) trained with its ``small`` config for the same wall time
   (``--minutes``, the trainer's ``train.max_minutes``); two probes (``--probe-steps``, 50 and 250) measure the
   step time, and the schedule spans the steps that should fit.
3. Generation cost in ms per jet at batch ``--timing-batch`` (1,000) for every sampler of the model
   (and 25/50/100 steps where the sampler has steps), best of 3.
4. ``--num`` jets sampled with the run's default sampler and scored against as many test-split
   jets: W1M, W1P, W1EFP, FPD, KPD, KL next to the real-vs-real floor of the report.

    python benchmarks/bench_pcmodels.py [--jets 50000] [--particles 30] [--minutes 3.5] [--num 5000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def _ms_per_jet(run, sampler: str, steps: int | None, batch: int, reps: int = 3) -> float:
    from pcmodels.sampling import generate_clouds

    best = float("inf")
    for _ in range(reps):
        _, t = generate_clouds(run, batch, sampler=sampler, steps=steps, batch_size=batch, progress=False)
        best = min(best, t["ms_per_cloud"])
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets", type=int, default=50_000)
    ap.add_argument("--particles", type=int, default=30, choices=(30, 150))
    ap.add_argument("--minutes", type=float, default=3.5, help="training wall time per model")
    ap.add_argument("--num", type=int, default=5000)
    ap.add_argument("--timing-batch", type=int, default=1000)
    ap.add_argument("--models", default="epic-fm,epic-jedi,mdma,deeptree")
    ap.add_argument("--timing", choices=("all", "default"), default="all",
                    help="time every sampler at 25/50/100 steps, or only the default sampler at 50")
    ap.add_argument("--reuse", action="store_true", help="reuse a finished run of this benchmark in --workdir")
    ap.add_argument("--probe-steps", default="50,250",
                    help="the two probes' steps (fewer for a model whose steps take seconds, e.g. 3,8)")
    ap.add_argument("--set", action="append", default=[], help="config override for every model")
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from pcdata.generate.jets import generate_jets
    from pcdata.ingest import IngestOptions, ingest_jetnet
    from pcmodels.config import load_config
    from pcmodels.evaluation import evaluate
    from pcmodels.registry import get_model
    from pcmodels.sampling import sample
    from pcmodels.training import train

    P = args.particles
    raw = args.workdir / f"t{P}-{args.jets}.hdf5"
    if not raw.exists():
        generate_jets(raw, process="top", num_jets=args.jets, num_particles=P, seed=11, workers=2)
    store = args.workdir / f"t{P}-{args.jets}.zarr"
    if not store.exists():
        ingest_jetnet([raw], store, label="t", cluster={"workers": 2}, options=IngestOptions(progress=False))
    overrides = tuple(args.set) + ((f"data.pad={P}",) if P != 30 else ())
    results = {}
    for model in args.models.split(","):
        spec = get_model(model)
        small = spec.config_path("small")
        previous = sorted(args.workdir.glob(f"run-{model}-{P}-{args.jets}-*"))
        if args.reuse and previous and (previous[-1] / "checkpoints" / "last.json").exists():
            run, t0 = previous[-1], time.perf_counter()
            print(f"reusing {run}", flush=True)
            r = train(store, run, load_config(run / "config.yaml"), progress=False)  # finished: returns at once
            rates = [line.split(",") for line in (run / "log.csv").read_text().splitlines() if ",clouds_per_s," in line]
            rate = float(rates[-1][2])  # as logged when it trained
            r = type(r)(r.run, r.steps, r.final, r.validation, rate, r.parameters)
            train_s = r.steps * load_config(run / "config.yaml").data.batch_size / rate
        else:
            # Step time from two probes (50 and 250 steps by default), so start-up costs cancel out.
            took, probes = [], [int(x) for x in args.probe_steps.split(",")]
            for n in probes:
                probe_dir = args.workdir / f"probe-{model}-{P}-{n}"
                shutil.rmtree(probe_dir, ignore_errors=True)
                t0 = time.perf_counter()
                train(store, probe_dir, load_config(small, overrides=overrides + ("train.val_batches=0",), steps=n),
                      progress=False)
                took.append(time.perf_counter() - t0)
                shutil.rmtree(probe_dir, ignore_errors=True)
            per_step = (took[1] - took[0]) / (probes[1] - probes[0])
            steps = max(30, int(args.minutes * 60 / per_step))
            run = args.workdir / f"run-{model}-{P}-{args.jets}-{steps}"
            shutil.rmtree(run, ignore_errors=True)
            t0 = time.perf_counter()
            # The schedule spans the probes' estimate; the wall-time budget makes the training time equal.
            r = train(store, run, load_config(small, overrides=overrides + (f"train.max_minutes={args.minutes}",),
                                              steps=steps), progress=True)
            train_s = time.perf_counter() - t0
        timing = {}
        for sampler in spec.samplers if args.timing == "all" else spec.samplers[:1]:
            for n in ((None,) if sampler == "direct" else (25, 50, 100) if args.timing == "all" else (50,)):
                timing[f"{sampler}-{n}" if n else sampler] = _ms_per_jet(run, sampler, n, args.timing_batch)
        gen = args.workdir / f"gen-{model}-{P}.zarr"
        shutil.rmtree(gen, ignore_errors=True)
        s = sample(run, args.num, gen, progress=False)
        report = evaluate(store, gen, args.workdir / f"report-{model}-{P}", num=args.num, progress=False)
        results[model] = {"train_seconds": train_s, "train_clouds_per_s": r.clouds_per_second, "steps": r.steps,
                          "validation": r.validation, "parameters": r.parameters, "sample": s,
                          "ms_per_jet": timing, "metrics": report}
        print(json.dumps({k: v for k, v in results[model].items() if k != "metrics"}, indent=1), flush=True)
    (args.workdir / f"pcmodels-bench-{P}.json").write_text(json.dumps(results, indent=1, default=str))
    for model, res in results.items():
        m = res["metrics"]
        print(f"\n{model}: {res['parameters']:,} parameters, {res['steps']} steps in {res['train_seconds']:.0f} s, "
              f"{res['train_clouds_per_s']:,.0f} jets/s training")
        for name in ("w1m", "w1p", "w1efp", "fpd", "kpd", "kl"):
            g, f = m[name], m["floor"][name]
            print(f"  {name:6s} {g['value']:.3g} +- {g['error']:.2g}   floor {f['value']:.3g} +- {f['error']:.2g}")
        print("  ms/jet:", ", ".join(f"{k} {v:.3f}" for k, v in res["ms_per_jet"].items()))


if __name__ == "__main__":
    main()
