"""Sweeps: a real study of EPiC-FM tiny on a 2-worker local cluster with ASHA, killed and restarted,
then compared; a real shower study scored by the CaloChallenge evaluation, its state in a database
outside the study folder, then compared; a trial task resubmitted while its orphan still runs
waits for it and trains nothing; bad study files refused in one line with nothing created."""

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
from pcmodels.sweep.study import study_from_dict
from pcmodels.sweep.trial import TrialTask, open_storage, run_trial
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


def shower_doc(store, /, **changes) -> dict:
    """A tiny shower study: MDMA's tiny shower config, two grid trials of a few steps, no pruner."""
    doc = {"store": str(store), "model": "mdma", "config": "tiny-showers",
           "space": {"optim.generator.lr": [1.0e-3, 3.0e-3]}, "sampler": "grid", "metric": "auc_low",
           "budget": {"trials": 2, "steps": 10}, "pruner": "none", "evaluation": {"split": "val", "num": 20},
           "seed": 0, "cluster": {"workers": 1}}
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
    # What the kill left running (the trial seen running may have finished just before the kill;
    # the client had then asked for the next one): every such trial resumes.
    running = sorted(n for n, (s, _, _) in before.items() if s == "RUNNING")
    assert running, f"the kill left no trial running: {before}"
    resumable = next((n for n in running if (out / "trials" / f"{n:04d}" / "run.json").exists()), None)
    resumed_run = (out / "trials" / f"{resumable:04d}" / "run.json").read_bytes() if resumable is not None else None

    # Restarted, the study continues: the running trial resumes, finished ones are not run again.
    proc = run_cli("pcmodels", "sweep", str(study), timeout=600)
    assert proc.returncode == 0, proc.stderr
    for n in running:
        assert f"trial {n} resumed" in proc.stderr, proc.stderr
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
    if resumable is not None:  # the same run folder, continued
        assert (out / "trials" / f"{resumable:04d}" / "run.json").read_bytes() == resumed_run
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


SHOWER_METRICS = ["auc_low", "auc_high", "jsd_low", "jsd_high", "fpd", "kpd"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 45 s on an idle 2-core machine
def test_shower_study_into_a_database_elsewhere_then_compare_with_the_floor(tmp_path, ds2_store):
    (tmp_path / "db").mkdir()
    db = tmp_path / "db" / "elsewhere.db"
    study = write(tmp_path / "showers.yaml", shower_doc(ds2_store, storage=f"sqlite:///{db}"))
    out = tmp_path / "showers"
    proc = run_cli("pcmodels", "sweep", str(study), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "2 trials (2 complete)" in proc.stdout
    assert "+-" not in proc.stderr  # an AUC has no error to print

    # The trials went into the named database; the study folder has none of its own.
    assert not (out / "optuna.db").exists()
    trials = trials_in_db(db)
    assert sorted(trials) == [0, 1] and {s for s, _, _ in trials.values()} == {"COMPLETE"}
    recorded = json.loads((out / "study.json").read_text())["study"]
    assert recorded["storage"] == f"sqlite:///{db}" and recorded["kind"] == "showers"
    results = json.loads((out / "results.json").read_text())
    values = {r["number"]: r["value"] for r in results["trials"]}
    assert values == {n: v for n, (_, v, _) in trials.items()}
    assert all(0.0 <= v <= 1.0 for v in values.values())  # a calibrated AUC
    assert all(r["error_of_value"] is None for r in results["trials"])
    assert results["best"]["value"] == min(values.values())
    # Scored by the CaloChallenge evaluation with the sweep's classifiers, no figures.
    report = json.loads(next((out / "trials" / "0000" / "evaluations").glob("*/metrics.json")).read_text())
    assert report["kind"] == "showers" and report["auc_low"] == values[0] and report["plots"] == []
    assert (report["classifier"]["config"]["epochs"], report["classifier"]["config"]["hidden"]) == (10, 512)
    assert report["floor"]["auc_low"] is not None

    # compare finds the trials in that database and ranks them by auc_low beside the floor.
    cmp = tmp_path / "cmp"
    proc = run_cli("pcmodels", "compare", str(out), "--out", str(cmp), "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "on 20 showers of split val" in proc.stdout
    table = json.loads((cmp / "compare.json").read_text())
    assert table["settings"]["kind"] == "showers" and table["settings"]["metric"] == "auc_low"
    ranked = [r for r in table["runs"] if r["rank"] is not None]
    assert {r["trial"]: r["metrics"]["auc_low"]["value"] for r in ranked} == values  # the trials' evaluations, read
    assert [r["metrics"]["auc_low"]["value"] for r in ranked] == sorted(values.values())
    assert list(table["floor"]) == SHOWER_METRICS
    assert table["floor"]["auc_low"] == {"value": report["floor"]["auc_low"], "error": None, "scale": 1.0}
    assert table["floor"]["fpd"]["error"] == report["floor"]["fpd"]["error"]
    md = (cmp / "compare.md").read_text()
    assert "20 generated showers against at most 40 real showers" in md
    header = next(line for line in md.splitlines() if line.startswith("| rank |"))
    assert header.endswith("| " + " | ".join(SHOWER_METRICS) + " |")
    floor_row = next(line for line in md.splitlines() if "real-vs-real floor" in line)
    cells = [c.strip() for c in floor_row.strip("|").split("|")][-len(SHOWER_METRICS):]
    assert ["±" in c for c in cells] == [False, False, False, False, True, True]  # AUCs, JSDs; FPD, KPD
    assert cells[0] == f"{report['floor']['auc_low']:.3g}"
    rows = (cmp / "compare.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 1 and rows[0].split(",")[-13:-1] == [c for m in SHOWER_METRICS for c in (m, f"{m}_error")]


def test_shower_and_jet_metrics_belong_to_their_kind_and_bad_storage_is_refused_by_the_cli(tmp_path, store,
                                                                                           ds2_store):
    cases = [(shower_doc(ds2_store, metric="w1m"),
              "metric: 'w1m' is not a metric of the shower evaluation (auc_low, auc_high, jsd_low, jsd_high, fpd, kpd)"),
             (study_doc(store, metric="auc_low"), "metric: 'auc_low' is not a metric of the jet evaluation"),
             (shower_doc(ds2_store, evaluation={"num": 4}),
              "evaluation.num: the shower evaluation needs at least 5 showers, got 4"),
             (study_doc(store, storage="redis://localhost/0"), "storage: 'redis' is not a database"),
             (study_doc(store, storage="sqlite:///missing/optuna.db"), f"storage: {tmp_path / 'missing'} is not a folder")]
    for doc, message in cases:
        path = write(tmp_path / "bad.yaml", doc)
        proc = run_cli("pcmodels", "sweep", str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"error: {path}: {message}"), proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no study folder, no database


@pytest.mark.parametrize("storage, message", [
    ("redis://localhost/0", "storage: 'redis' is not a database Optuna's storage serves here (one of sqlite, "
                            "postgresql, mysql)"),
    ("not a url", "storage: 'not a url' is not a database URL (sqlite:///PATH, postgresql://HOST/DB, mysql://HOST/DB)"),
    ("sqlite://", "storage: an in-memory SQLite database dies with the client; give a file (sqlite:///PATH)"),
    ("sqlite:///:memory:", "storage: an in-memory SQLite database dies with the client"),
    ("sqlite:///missing/optuna.db", "storage: {tmp}/missing is not a folder (the SQLite file optuna.db goes there)"),
    ("sqlite:///", "storage: an in-memory SQLite database"),
    ("sqlite:///dbs", "storage: {tmp}/dbs is a folder, not a database file"),
    ("postgresql://sweeper:secret@db.example.org/optuna", "storage: the URL holds a password; give it to the "
                                                          "database client instead (PostgreSQL: PGPASSWORD"),
    (5432, "storage: expected a string, got 5432"),
])
def test_bad_storage_is_one_line_naming_the_key(tmp_path, store, storage, message):
    (tmp_path / "dbs").mkdir()
    path = write(tmp_path / "bad.yaml", study_doc(store, storage=storage))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: {message.format(tmp=tmp_path)}")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "dbs"] and not any((tmp_path / "dbs").iterdir())


def test_storage_paths_resolve_beside_the_study_file_and_name_the_study(tmp_path, store):
    (tmp_path / "dbs").mkdir()
    doc = study_doc(store)
    default = load_study(write(tmp_path / "s.yaml", doc))
    elsewhere = load_study(write(tmp_path / "s.yaml", {**doc, "storage": "sqlite:///dbs/s.db"}))
    assert default.storage is None and elsewhere.storage == f"sqlite:///{tmp_path / 'dbs' / 's.db'}"
    assert not (tmp_path / "dbs" / "s.db").exists()  # checked, not created
    # Another database is another study: the trial folders are numbered by the database's trials.
    assert elsewhere.identity() != default.identity()
    # A server database: accepted without connecting when its driver is installed here.
    server = {**doc, "storage": "postgresql://sweeper@db.example.org/optuna"}
    try:
        import psycopg  # noqa: F401 - SQLAlchemy's default PostgreSQL driver
    except ImportError:
        with pytest.raises(ConfigError, match=r"storage: postgresql needs its database driver \(No module named"):
            load_study(write(tmp_path / "s.yaml", server))
    else:
        assert load_study(write(tmp_path / "s.yaml", server)).storage == server["storage"]


def test_a_database_holding_another_study_of_the_name_is_refused_with_no_folder(tmp_path, store):
    import optuna

    db = tmp_path / "shared.db"
    first = load_study(write(tmp_path / "lr.yaml", study_doc(store, storage=f"sqlite:///{db}")))
    ostudy = optuna.create_study(study_name="lr", storage=open_storage(f"sqlite:///{db}"))
    ostudy.set_user_attr("pcmodels_identity", "0123456789abcdef")  # another folder's study "lr"
    assert first.identity() != "0123456789abcdef"
    proc = run_cli("pcmodels", "sweep", str(tmp_path / "lr.yaml"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == (f"error: storage: sqlite:///{db} holds another study named 'lr' (another description); "
                           "rename this study (name:) or use another database\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.yaml", "shared.db"]


ORPHAN = """
import sys, time
import optuna
from pcmodels.sweep.trial import _trial_lock, open_storage

url, trial_id, run_dir, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with _trial_lock(run_dir):
    print("locked", time.time(), flush=True)
    time.sleep(hold)
    # As the task of a client that died: it finishes its trial and records it, then its lock goes.
    storage = open_storage(url)
    storage.set_trial_user_attr(trial_id, "step", 24)
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [0.125])
    print("released", time.time(), flush=True)
"""


@pytest.mark.timeout(300)
def test_a_resubmitted_trial_waits_for_its_orphan_and_never_trains_twice(tmp_path, store):
    import optuna
    import torch

    hold = 4.0
    spec = study_from_dict(study_doc(store, pruner="none"), base_dir=tmp_path, default_name="orphan")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    ostudy = optuna.create_study(study_name=spec.name, storage=open_storage(url), sampler=spec.make_sampler(),
                                 direction=spec.direction)
    trial = ostudy.ask({p.key: p.distribution() for p in spec.space})
    run_dir = tmp_path / "trials" / "0000"
    task = TrialTask(url, spec.name, trial._trial_id, trial.number, dict(trial.params), spec, str(run_dir))
    orphan = subprocess.Popen([sys.executable, "-c", ORPHAN, url, str(trial._trial_id), str(run_dir), str(hold)],
                              cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    threads = torch.get_num_threads()
    try:
        line = orphan.stdout.readline()
        assert line.startswith("locked"), orphan.stderr.read()
        locked_at = float(line.split()[1])
        t0 = time.perf_counter()
        outcome = run_trial(task)  # the resubmitted task, in this process
        elapsed, returned_at = time.perf_counter() - t0, time.time()
    finally:
        torch.set_num_threads(threads)  # run_trial pins this process to one thread, as a worker
        orphan.wait(timeout=60)
    released_at = float(orphan.stdout.read().split()[1])
    assert orphan.returncode == 0, orphan.stderr.read()
    # It waited for the orphan's lock, then found the trial finished: the orphan's outcome, nothing trained.
    assert returned_at >= released_at and returned_at - locked_at >= hold and elapsed >= hold - 0.5
    assert outcome == {"number": 0, "state": "complete", "value": 0.125, "params": dict(trial.params), "step": 24}
    assert not run_dir.exists()  # no run folder, no checkpoint
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["0000.lock"]
    assert [t[:2] for t in trials_in_db(tmp_path / "optuna.db").values()] == [("COMPLETE", 0.125)]  # told once
