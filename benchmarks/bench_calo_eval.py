"""Benchmark: the CaloChallenge evaluation here against the official ``evaluate.py``, same files.

1. Two files per geometry from the built-in shower generator (``bench-data/calo-<geo>-{real,gen}-N.hdf5``):
   ``--ds2`` showers of ds2 (10,000) and ``--ds3`` of ds3 (2,000), real and "generated" (another seed).
2. Ours: :func:`pcmodels.evaluation.evaluate_showers` with every step (features, separation powers,
   FPD/KPD, low- and high-level classifiers at ``--epochs``), without and with the real-vs-real floor,
   no plots, in a subprocess whose peak memory is sampled.
3. Official (with ``--official DIR``, the ``code/`` folder of a CaloChallenge/homepage checkout): the
   same steps, i.e. modes ``hist-chi``, ``cls-low``, ``cls-high`` and ``fpd``, each a run of the
   unmodified script with ``--cls_n_epochs`` = ``--epochs``, from a harness that only (a) disables
   LaTeX (not installed here), (b) imports jetnet under numpy 2 the way this project does (a
   placeholder for its numpy-1-only EMD wheel, which FPD/KPD do not use) and (c) switches ``ttv_split`` to its own fractional 0.6/0.2/0.2 rule, because the
   fixed 60k/20k/20k split leaves nothing to test on in files of fewer than 100k showers. The
   reference pickle is deleted first, so both sides compute the reference features.
4. The official separation powers and FPD/KPD are compared with ours (they must agree).

    python benchmarks/bench_calo_eval.py [--official /path/to/homepage/code] [--ds2 10000] [--ds3 2000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_HARNESS = r'''
import os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
_rc = plt.rc
plt.rc = lambda group, **kw: None if group.startswith("text") else _rc(group, **kw)  # no LaTeX here
from pcmodels.metrics.jets import load_jetnet_evaluation
load_jetnet_evaluation()  # jetnet imported under numpy 2 (its EMD wheel is numpy-1 only; fpd/kpd do not use it)
code = sys.argv[1]
os.chdir(code); sys.path.insert(0, code)
source = open(os.path.join(code, "evaluate.py")).read()
# the fixed 60k/20k/20k split needs >= 100k showers per file; use the function's own fractional rule
source = source.replace("dataset=args.dataset)", "dataset=None)")
sys.argv = ["evaluate.py"] + sys.argv[2:]
exec(compile(source, os.path.join(code, "evaluate.py"), "exec"), {"__name__": "__main__"})
'''


def _run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in GiB of it and its children, sampled)."""
    import psutil

    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    peak, ps = [0], psutil.Process(proc.pid)

    def sample():
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.wait()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - t0, peak[0] / 2**30


def _files(geo: str, n: int, data: Path) -> tuple[Path, Path]:
    from pcdata.generate.showers import generate_showers

    out = []
    for name, seed in (("real", 1), ("gen", 2)):
        path = data / f"calo-{geo}-{name}-{n}.hdf5"
        if not path.exists():
            generate_showers(path, geometry=geo, num_showers=n, seed=seed, workers=2, progress=False)
        out.append(path)
    return out[0], out[1]


_OURS = r'''
import json, sys
from pcmodels.evaluation.showers import evaluate_showers
from pcmodels.metrics.classifier import ClassifierConfig
real, gen, out, epochs, floor = sys.argv[1:6]
rep = evaluate_showers(real, gen, out, num=None, classifier=ClassifierConfig(epochs=int(epochs)), plots=False,
                       floor=floor == "1", progress=True)
print(json.dumps(rep["timings"]))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, help="code/ of a CaloChallenge/homepage checkout")
    ap.add_argument("--ds2", type=int, default=10_000)
    ap.add_argument("--ds3", type=int, default=2_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=REPO / "bench-data")
    ap.add_argument("--out", type=Path, default=REPO / "bench-data" / "calo-eval")
    ap.add_argument("--reuse-official", action="store_true", help="reuse the official runs of an earlier call "
                    "(same files and epochs) instead of running them again")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for geo, n, ds in (("ds2", args.ds2, "2"), ("ds3", args.ds3, "3")):
        if not n:
            continue
        real, gen = _files(geo, n, args.data)
        row = {"geometry": geo, "showers": n, "epochs": args.epochs}
        for floor in (0, 1):
            out = args.out / f"ours-{geo}-floor{floor}"
            t, mem = _run([sys.executable, "-c", _OURS, str(real), str(gen), str(out), str(args.epochs), str(floor)],
                          args.out / f"ours-{geo}-floor{floor}.log")
            row[f"ours{'_floor' if floor else ''}_s"], row[f"ours{'_floor' if floor else ''}_gib"] = round(t, 1), round(mem, 2)
            print(f"{geo}: ours{' with floor' if floor else ''}: {t:.1f} s, peak {mem:.2f} GiB", flush=True)
        ours = json.loads((args.out / f"ours-{geo}-floor0" / "metrics.json").read_text())
        if args.official:
            harness = args.out / "official_harness.py"
            harness.write_text(_HARNESS)
            pkl = real.with_suffix(".pkl")
            pkl.unlink(missing_ok=True)
            total, peak = 0.0, 0.0
            odir = args.out / f"official-{geo}"
            saved = args.out / f"official-{geo}-e{args.epochs}-n{n}.json"
            done = json.loads(saved.read_text()) if args.reuse_official and saved.exists() else {}
            for mode in ("hist-chi", "cls-low", "cls-high", "fpd"):
                if mode in done:
                    t, mem = done[mode]
                    total, peak = total + t, max(peak, mem)
                    row[f"official_{mode}_s"] = round(t, 1)
                    continue
                t, mem = _run([sys.executable, str(harness), str(args.official.resolve()), "-i", str(gen.resolve()),
                               "-r", str(real.resolve()), "-m", mode, "-d", ds, "--output_dir", str(odir.resolve()),
                               "--cls_n_epochs", str(args.epochs), "--no_cuda"], args.out / f"official-{geo}-{mode}.log")
                total, peak = total + t, max(peak, mem)
                row[f"official_{mode}_s"] = round(t, 1)
                done[mode] = (t, mem)
                saved.write_text(json.dumps(done))
                print(f"{geo}: official {mode}: {t:.1f} s, peak {mem:.2f} GiB", flush=True)
            pkl.unlink(missing_ok=True)
            row["official_s"], row["official_gib"] = round(total, 1), round(peak, 2)
            row["speedup"] = round(total / row["ours_s"], 1)
            text = (odir / f"histogram_chi2_{ds}.txt").read_text()
            official = {m.group(1): float(m.group(2)) for m in re.finditer(r"(.+): \n(\S+)\n", text)}
            mine = ours["separation_power"]
            row["sep_max_abs_diff"] = max(abs(official[k] - mine[k]) for k in official if mine[k] is not None)
            row["sep_identical"] = sum(official[k] == mine[k] for k in official)
            fk = (odir / f"fpd_kpd_{ds}.txt").read_text()
            row["official_fpd_kpd"] = fk.replace("\n", "; ")
            row["ours_fpd_kpd"] = (f"FPD (x10^3): {ours['fpd']['value']:.4f} ± {ours['fpd']['error']:.4f}; "
                                   f"KPD (x10^3): {ours['kpd']['value']:.4f} ± {ours['kpd']['error']:.4f}")
            for mode in ("cls-low", "cls-high"):
                lines = (odir / f"classifier_{mode}_{ds}.txt").read_text().strip().splitlines()
                row[f"official_{mode}_auc_jsd"] = lines[-1]
            row["ours_auc_jsd"] = f"low {ours['auc_low']:.4f} / {ours['jsd_low']:.4f}, high {ours['auc_high']:.4f} / {ours['jsd_high']:.4f}"
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
