"""Sweeps: a real study of EPiC-FM tiny on a 2-worker local cluster with ASHA, killed and restarted,
then compared; bad study files refused in one line with nothing created."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pcdata.ingest import IngestOptions, ingest_jetnet
from pcmodels.errors import ConfigError
from pcmodels.sweep import load_study
from tests.conftest import REPO, run_cli

pytestmark = [pytest.mark.distributed]

SPACE = {"optim.net.lr": [1.0e-5, 3.0e-3], "network.hidden": [16, 32], "network.layers": [1, 2]}


@pytest.fixture(scope="module")
def store(tmp_path_factory, jetnet_files, scheduler):
    return ingest_jetnet(jetnet_files[:1], tmp_path_factory.mktemp("st") / "s", cluster=scheduler, options=IngestOptions(progress=False)).path


def study_doc(store, /, **changes) -> dict:
    doc = {"store": str(store), "model": "epic-fm", "config": "tiny", "space": SPACE, "sampler": "grid",
           "metric": "w1m", "budget": {"trials": 8, "steps": 24},
           "pruner": {"name": "asha", "every": 6, "reduction_factor": 2},
           "evaluation": {"split": "val", "num": 100}, "seed": 0, "cluster": {"workers": 2}}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def trials_in_db(db: Path) -> dict[int, tuple[str, float | None, dict]]:
    """number -> (state, value, params) read straight from Optuna's SQLite file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        rows = con.execute("SELECT t.trial_id, t.number, t.state, v.value FROM trials t "
                           "LEFT JOIN trial_values v ON v.trial_id = t.trial_id").fetchall()
        params = con.execute("SELECT trial_id, param_name, param_value FROM trial_params").fetchall()
    by_id = {}
    for trial_id, name, value in params:
        by_id.setdefault(trial_id, {})[name] = value
    return {number: (state, value, by_id.get(trial_id, {})) for trial_id, number, state, value in rows}


def _kill_tree(proc: subprocess.Popen) -> None:
    """kill -9 the client, then the local cluster's processes it started (no orphan keeps running)."""
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=30)


def _finished_files(trial: Path) -> dict[str, int]:
    files = [trial / "run.json", trial / "checkpoints" / "last.json", *trial.glob("evaluations/*/metrics.json")]
    return {str(p): p.stat().st_mtime_ns for p in files if p.exists()}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # about 2 minutes on an idle 2-core machine; much more when it is shared
def test_study_killed_and_restarted_completes_without_repeating_then_compare_ranks(tmp_path, store):
    study = write(tmp_path / "lr.yaml", study_doc(store))
    out = tmp_path / "lr"
    db = out / "optuna.db"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.pcmodels", "sweep", str(study)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Kill the client once a trial is finished and another one is running with a checkpoint.
    deadline, resumable = time.monotonic() + 900, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not db.exists():
                continue
            try:
                trials = trials_in_db(db)
            except sqlite3.OperationalError:  # the tables are being created
                continue
            finished = [n for n, (s, _, _) in trials.items() if s in ("COMPLETE", "PRUNED")]
            running = [n for n, (s, _, _) in trials.items()
                       if s == "RUNNING" and (out / "trials" / f"{n:04d}" / "checkpoints" / "last.json").exists()]
            if finished and running:
                resumable = running[0]
                break
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    assert resumable is not None, f"the study never reached a finished trial:\n{proc.stderr.read()}"
    before = trials_in_db(db)
    finished = {n: t for n, t in before.items() if t[0] in ("COMPLETE", "PRUNED")}
    assert len(before) < 8  # killed part-way
    files = {n: _finished_files(out / "trials" / f"{n:04d}") for n in finished}
    resumed_run = (out / "trials" / f"{resumable:04d}" / "run.json").read_bytes()

    # Restarted, the study continues: the running trial resumes, finished ones are not run again.
    proc = run_cli("pcmodels", "sweep", str(study), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"trial {resumable} resumed" in proc.stderr
    assert "8 trials" in proc.stdout
    after = trials_in_db(db)
    assert sorted(after) == list(range(8))
    assert {s for s, _, _ in after.values()} <= {"COMPLETE", "PRUNED"}
    states = [s for s, _, _ in after.values()]
    assert "PRUNED" in states and "COMPLETE" in states  # ASHA stopped some trials early
    # The grid's 8 points, each once: no trial was repeated.
    assert len({json.dumps(p, sort_keys=True) for _, _, p in after.values()}) == 8
    for n, t in finished.items():
        assert after[n] == t
        assert _finished_files(out / "trials" / f"{n:04d}") == files[n], f"finished trial {n} was run again"
        assert f"trial {n} started" not in proc.stderr and f"trial {n} resumed" not in proc.stderr
    assert (out / "trials" / f"{resumable:04d}" / "run.json").read_bytes() == resumed_run  # the same run folder
    results = json.loads((out / "results.json").read_text())
    complete = {r["number"]: r for r in results["trials"] if r["state"] == "complete"}
    assert all(r["step"] == 24 for r in complete.values())
    assert all(r["step"] < 24 for r in results["trials"] if r["state"] == "pruned")

    # The study's folder holds this study: another description is refused before any work.
    changed = write(tmp_path / "lr2.yaml", study_doc(store, name="lr", space={**SPACE, "network.hidden": [16, 48]}))
    proc = run_cli("pcmodels", "sweep", str(changed), "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {out}: holds a study of another description (differs in space)")

    # compare ranks the trials by the study's metric, beside the floor, reading their evaluations.
    cmp = tmp_path / "cmp"
    proc = run_cli("pcmodels", "compare", str(out), "--out", str(cmp), "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in cmp.iterdir()) == ["compare.csv", "compare.json", "compare.md", "compare.pdf",
                                                      "compare.png"]
    table = json.loads((cmp / "compare.json").read_text())
    ranked = [r for r in table["runs"] if r["rank"] is not None]
    assert [r["rank"] for r in ranked] == list(range(1, len(complete) + 1))
    values = [r["metrics"]["w1m"]["value"] for r in ranked]
    assert values == sorted(values)
    assert {r["trial"] for r in ranked} == set(complete)  # pruned ones listed, not scored by default
    assert {r["trial"]: r["metrics"]["w1m"]["value"] for r in ranked} == {n: r["value"] for n, r in complete.items()}
    assert table["best_per_model"] == {"epic-fm": ranked[0]["label"]}
    assert results["best"]["number"] == ranked[0]["trial"]
    assert table["floor"]["w1m"]["value"] > 0 and set(table["effects"]) == set(SPACE)
    md = (cmp / "compare.md").read_text()
    assert "real-vs-real floor" in md and "## Effect of each hyperparameter" in md
    assert len((cmp / "compare.csv").read_text().splitlines()) == 1 + 8 + 1  # header, trials, floor


@pytest.mark.parametrize("changes, message", [
    ({"space": {"network.hiden": [16, 32]}}, "space.network.hiden: not a setting of epic-fm (network has hidden, latent, layers, time_dim)"),
    ({"space": {}}, "space: empty; name at least one hyperparameter"),
    ({"metric": "auc_low"}, "metric: 'auc_low' is not a metric of the jet evaluation (w1m, w1p, w1efp, fpd, kpd, kl)"),
    ({"space": {"optim.net.lr": [1.0e-3, -1]}}, "space.optim.net.lr: value -1 is not valid (optim.net.lr: must be > 0, got -1.0)"),
    ({"space": {"optim.net.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}},
     "space.optim.net.lr: the grid sampler needs a list of values, not a range"),
    ({"space": {"network": [1, 2]}}, "space.network: a section, not a setting"),
    ({"space": {"train.steps": [1, 2]}}, "space.train.steps: set by the study's budget and seed"),
    ({"budget": {"trials": 9, "steps": 4}}, "budget.trials: 9 is more than the grid's 8 points"),
    ({"budget": {"steps": 4, "epochs": 1}}, "budget: give steps or epochs, not both"),
    ({"pruner": "hyperband"}, "pruner: expected one of asha, median, none, got 'hyperband'"),
    ({"direction": "down"}, "direction: expected minimize or maximize, got 'down'"),
    ({"evaluation": {"split": "holdout"}}, "evaluation.split: "),
    ({"store": "/nonexistent/store.zarr"}, "store: "),
    ({"model": "gpt"}, "model: unknown model 'gpt'"),
    ({"space": {"network.hidden": {"low": 8.5, "high": 32}}, "sampler": "tpe"},
     "space.network.hidden: network.hidden is an integer; low and high must be integers"),
    ({"colour": "red"}, "colour: unknown key"),
])
def test_bad_study_is_one_line_naming_the_key(tmp_path, store, changes, message):
    path = write(tmp_path / "bad.yaml", study_doc(store, **changes))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)


def test_bad_study_cli_exits_2_and_creates_nothing(tmp_path, store):
    for changes in ({"space": {"network.hiden": [16, 32]}}, {"metric": "auc_low"},
                    {"cluster": {"workers": 2, "gpus": 1}}):
        path = write(tmp_path / "bad.yaml", study_doc(store, **changes))
        proc = run_cli("pcmodels", "sweep", str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no study folder, no temporary


def test_study_file_defaults_and_ranges(tmp_path, store):
    doc = study_doc(store, sampler="tpe", space={"optim.net.lr": {"low": "1e-4", "high": 1.0e-2, "log": True},
                                                "network.layers": {"low": 1, "high": 3}},
                    pruner="median", budget={"trials": 3, "steps": 40}, evaluation=None, name="tpe")
    spec = load_study(write(tmp_path / "s.yaml", doc))
    lr, layers = spec.space
    assert (lr.low, lr.high, lr.log, lr.integer) == (1e-4, 1e-2, True, False)  # '1e-4': YAML 1.1's string
    assert (layers.low, layers.high, layers.integer) == (1, 3, True)
    assert spec.pruner.name == "median" and spec.pruner.every == 10  # four reports over the trial
    assert (spec.split, spec.num, spec.seed, spec.trials) == ("val", 2000, 0, 3)
    assert spec.base["train"]["steps"] == 40 and spec.base["train"]["epochs"] is None
    # The cluster and the number of trials may change between invocations; the rest is the study.
    again = load_study(write(tmp_path / "s.yaml", {**doc, "cluster": {"workers": 1}, "budget": {"trials": 5, "steps": 40}}))
    assert again.identity() == spec.identity()
    other = load_study(write(tmp_path / "s.yaml", {**doc, "budget": {"trials": 3, "steps": 41}}))
    assert other.identity() != spec.identity()


def test_compare_refuses_what_is_neither_a_run_nor_a_study(tmp_path):
    (tmp_path / "notes").mkdir()
    proc = run_cli("pcmodels", "compare", str(tmp_path / "notes"), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr == f"error: {tmp_path / 'notes'}: neither a training run (run.json) nor a study folder (study.json)\n"
    assert not (tmp_path / "cmp").exists()
