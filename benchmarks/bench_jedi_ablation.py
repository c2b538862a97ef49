"""Why does EPiC-JeDi score below EPiC-FM at equal training? One change at a time, same steps.

Each variant trains the ``small`` config for ``--steps`` steps on the benchmark store
(``bench_pcmodels.py`` makes it), samples ``--num`` jets with each sampler at 50 steps and is
scored against as many test jets (W1M, W1P, FPD, KL beside the real-vs-real floor). Variants:
EPiC-FM as the reference; EPiC-JeDi as shipped; features at std 1 instead of 5 (``feature_scale``);
lr 1e-3 instead of 3e-4; both; predicting v instead of eps.

    python benchmarks/bench_jedi_ablation.py [--steps 3000] [--num 2500] [--variants fm,jedi,...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

VARIANTS = {
    "fm": ("epic-fm", ()),
    "jedi": ("epic-jedi", ()),
    "jedi-scale1": ("epic-jedi", ("method.feature_scale=1",)),
    "jedi-lr1e-3": ("epic-jedi", ("optim.net.lr=1e-3",)),
    "jedi-scale1-lr1e-3": ("epic-jedi", ("method.feature_scale=1", "optim.net.lr=1e-3")),
    "jedi-v": ("epic-jedi", ("method.prediction=v",)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("bench-data/t30-50000.zarr"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--num", type=int, default=2500)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workdir", type=Path, default=Path("bench-data/jedi"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from pcmodels.config import load_config
    from pcmodels.evaluation import evaluate
    from pcmodels.registry import get_model
    from pcmodels.sampling import sample
    from pcmodels.training import train

    rows = []
    for name in args.variants.split(","):
        model, overrides = VARIANTS[name]
        run = args.workdir / f"run-{name}-{args.steps}"
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.perf_counter()
        config = load_config(get_model(model).config_path("small"), steps=args.steps,
                             overrides=overrides + ("train.val_batches=0",))
        train(args.store, run, config, progress=False)
        seconds = time.perf_counter() - t0
        for sampler in get_model(model).samplers[:3] if model == "epic-jedi" else ("midpoint",):
            gen = args.workdir / f"gen-{name}-{sampler}"
            shutil.rmtree(gen, ignore_errors=True)
            sample(run, args.num, gen, sampler=sampler, steps=50, progress=False)
            rep = evaluate(args.store, gen, args.workdir / f"report-{name}-{sampler}", num=args.num, progress=False)
            row = {"variant": name, "sampler": sampler, "train_seconds": round(seconds),
                   **{k: [round(rep[k]["value"], 2), round(rep[k]["error"], 2)] for k in ("w1m", "w1p", "fpd", "kl")},
                   "floor": {k: round(rep["floor"][k]["value"], 2) for k in ("w1m", "w1p", "fpd", "kl")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.workdir / f"jedi-ablation-{args.steps}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
