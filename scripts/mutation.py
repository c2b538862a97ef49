"""Mutation testing of the modules that carry the project's promises, with mutmut 3.

Each target is a module and the tests meant to catch a bug in it. For each, the repository is
copied (tracked and untracked files, not ignored ones) to a scratch directory, mutmut mutates the
module there and runs the target's tests against every mutant (forked, only the tests that reach
the mutated function), and the kill rate is reported: killed (a test failed, or the mutant hung
past mutmut's timeout) over all mutants. A mutant that no test reaches counts as surviving.

Lines whose every mutant is equivalent (the program's behaviour cannot change) carry
``# pragma: no mutate`` with the reason in a comment beside it.

    .venv/bin/python scripts/mutation.py [--only splits order] [--jobs 2] [--out mutation-report]
                                         [--min-rate 0.95]

Not in the default test run: a full run takes tens of minutes on two cores. Prints a markdown
table (the README's) and writes ``<out>/report.json`` with every surviving mutant's diff. With
``--min-rate`` it exits 1 when a target's kill rate is below it (``scripts/test.sh`` runs one
small target so, after the suite: a test weakened until it no longer catches bugs fails CI).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = "mutmut==3.8.1"


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    tests: tuple[str, ...]


# The promise-carrying modules (issue: the store, the loader's order and resume, voxel/point
# conversion and dequantisation, jet coordinates, the methods, the trainer, the evaluation floor).
TARGETS = (
    Target("splits", "pcdata/store/splits.py", ("tests/store/test_splits.py",)),
    Target("format", "pcdata/store/format.py", ("tests/store/test_format.py",)),
    Target("order", "pcdata/loaders/order.py", ("tests/loaders/test_order.py",)),
    Target("voxels", "pcdata/geometry/voxels.py", ("tests/geometry/test_voxels.py",)),
    Target("jet-coordinates", "pcdata/geometry/jets.py", ("tests/geometry/test_jets.py",)),
    Target("shards", "pcdata/store/shards.py", ("tests/store/test_shards.py", "tests/store/test_chunks.py",
                                                "tests/store/test_reader.py", "tests/store/test_remote.py")),
    # (test_faults.py kills forked writers at every step and fsyncs each time: 9 min a run here, so
    # the reader's and the writer's mutants run against the in-process tests only)
    Target("reader", "pcdata/store/reader.py", ("tests/store/test_reader.py", "tests/store/test_chunks.py",
                                                "tests/store/test_remote.py")),
    Target("writer", "pcdata/store/writer.py", ("tests/store/test_writer.py",)),
    Target("transforms", "pcdata/loaders/transforms.py", ("tests/loaders/test_transforms.py",)),
    Target("loader", "pcdata/loaders/loader.py", ("tests/loaders/test_loader.py", "tests/loaders/test_transforms.py",
                                                  "tests/loaders/test_workers.py")),
    Target("flow-matching", "pcmodels/methods/flow_matching.py", ("tests/pcmodels/test_methods.py",)),
    Target("diffusion", "pcmodels/methods/diffusion.py", ("tests/pcmodels/test_methods.py",)),
    # (tests that start a Dask cluster hang in mutmut's forked children: the trainer's own tests
    # run in-process on toy batches, the CLI and store ones stay in the suite)
    Target("train-step", "pcmodels/training/step.py", ("tests/pcmodels/test_step.py",)),
    Target("checkpoint", "pcmodels/training/checkpoint.py", ("tests/pcmodels/test_checkpoint.py",
                                                            "tests/pcmodels/test_step.py")),
    Target("floor", "pcmodels/evaluation/floor.py", ("tests/evaluation/test_floor.py",)),
)

_STATUS = re.compile(r"^\s*(\S+): (\w[\w ]*)$")


def _copy_repo(dest: Path) -> None:
    """Tracked and untracked (not ignored) files of the repository into ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _configure(work: Path, target: Target) -> None:
    text = (work / "pyproject.toml").read_text()
    text += ("\n[tool.mutmut]\n"
             f"source_paths = [{json.dumps(target.module)}]\n"
             f"pytest_add_cli_args_test_selection = {json.dumps(list(target.tests))}\n"
             'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
             'also_copy = ["tests", "pcdata", "pcmodels", "cli", "catalogs"]\n')
    (work / "pyproject.toml").write_text(text)


def run_target(target: Target, scratch: Path, jobs: int) -> dict:
    work = scratch / target.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _copy_repo(work)
    _configure(work, target)
    mutmut = [sys.executable, "-m", "mutmut"]
    t = time.perf_counter()
    # mutmut forks a child per mutant: torch's OpenMP pool, once started in the parent, deadlocks a
    # forked child (it then counts as a timeout, i.e. killed); one thread keeps the children honest.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([*mutmut, "run", "--max-children", str(jobs)], cwd=work, capture_output=True, text=True,
                         env=env)
    seconds = time.perf_counter() - t
    listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True)
    status: dict[str, str] = {}
    for line in listing.stdout.splitlines():
        m = _STATUS.match(line)
        if m:
            status[m[1]] = m[2].strip()
    if not status:
        raise SystemExit(f"error: mutmut produced no mutants for {target.module} (exit {run.returncode}):\n"
                         f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    killed = sum(s in ("killed", "timeout") for s in status.values())
    survivors = {}
    for name, s in sorted(status.items()):
        if s not in ("killed", "timeout"):
            diff = subprocess.run([*mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
            survivors[name] = {"status": s, "diff": "\n".join(l for l in diff.splitlines() if l[:2] in ("- ", "+ "))}
    return {"target": target.name, "module": target.module, "tests": list(target.tests), "mutants": len(status),
            "killed": killed, "rate": killed / len(status), "seconds": seconds, "survivors": survivors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=[t.name for t in TARGETS], help="targets to run (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/pcdata-mutation"))
    ap.add_argument("--out", type=Path, default=ROOT / "mutation-report")
    ap.add_argument("--min-rate", type=float, default=None, help="exit 1 if a target's kill rate is below this")
    args = ap.parse_args()
    import importlib.util

    if importlib.util.find_spec("mutmut") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MUTMUT], check=True)
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for target in targets:
        print(f"{target.name}: mutating {target.module} ...", flush=True)
        r = report[target.name] = run_target(target, args.scratch, args.jobs)
        print(f"  {r['killed']}/{r['mutants']} killed ({r['rate']:.1%}) in {r['seconds']:.0f} s", flush=True)
        for name, s in r["survivors"].items():
            print(f"  {s['status']}: {name}\n    " + s["diff"].replace("\n", "\n    "))
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    print("\n| module | tests | mutants | killed | rate | time |\n| --- | --- | ---: | ---: | ---: | ---: |")
    for t in TARGETS:
        if t.name in report:
            r = report[t.name]
            print(f"| `{r['module']}` | {', '.join(Path(x).name for x in r['tests'])} | {r['mutants']} | {r['killed']} "
                  f"| {r['rate']:.1%} | {r['seconds'] / 60:.1f} min |")
    if args.min_rate is not None:
        low = [report[t.name] for t in targets if report[t.name]["rate"] < args.min_rate]
        for r in low:
            print(f"error: mutation testing of {r['module']}: {r['rate']:.1%} of its mutants killed, "
                  f"below --min-rate {args.min_rate:.0%}", file=sys.stderr)
        if low:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
