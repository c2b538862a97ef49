"""Run a study: trials as Dask tasks, Optuna's sampler and pruner, its state in a database.

::

    STUDY/study.json       the validated study (and its identity digest)
    STUDY/optuna.db        Optuna's RDB storage (SQLite) unless the study's ``storage:`` names
                           another: trials, parameters, reports, outcomes
    STUDY/trials/NNNN/     trial NNNN's run folder (a pcmodels run, resumable) and its evaluations
    STUDY/results.json     every trial's outcome, rewritten as trials end

The client asks Optuna for a trial only when a worker is free (so the sampler sees every result
so far) and never tells: each worker records its own trial's outcome. Restarted, the client
resubmits the trials still marked running (they resume from their checkpoints) and asks for new
ones only up to ``budget.trials``; a finished trial is never run again.

Where the state lives (``storage:``): SQLite serves one machine, or workers that share its file on
a file system with working POSIX locks (many network file systems lock badly, and SQLite then
corrupts or stalls). Several nodes need a database server that Optuna's RDB storage speaks to,
``postgresql://`` or ``mysql://``, and the study folder on a file system every worker mounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from pcdata._io import remove_tree, temp_sibling, write_json_atomic

from ..errors import RunError
from .study import StudySpec, load_study
from .trial import TrialTask, open_storage, run_trial

__all__ = ["run_study", "StudyResult", "study_client", "study_folder", "trial_dir", "storage_url", "STUDY_FORMAT"]

STUDY_FORMAT, STUDY_VERSION = "pcmodels-study", 2


@dataclass(frozen=True)
class StudyResult:
    path: Path
    trials: list[dict]
    best: dict | None
    seconds: float
    submitted: int


@contextlib.contextmanager
def study_client(cluster: Mapping[str, Any], client=None) -> Iterator[Any]:
    """The one place a sweep gets its Dask cluster: the given ``client`` (a ``distributed.Client``),
    or one from the study's ``cluster:`` description (:class:`pcdata.cluster.ClusterSpec`: a local
    cluster, a running scheduler, batch jobs, GPUs), one thread per worker."""
    if client is not None:
        yield client
        return
    from pcdata.cluster import ClusterSpec, connect

    with connect(ClusterSpec.from_dict(cluster)) as c:
        yield c


def trial_dir(study: Path, number: int) -> Path:
    return Path(study) / "trials" / f"{number:04d}"


def storage_url(storage: str | None, study: Path) -> str:
    """The study's Optuna storage: its ``storage:`` URL, else ``sqlite:///STUDY/optuna.db``."""
    return storage or f"sqlite:///{(Path(study) / 'optuna.db').resolve()}"


def study_folder(spec: StudySpec, out: str | os.PathLike | None) -> Path:
    if out is not None:
        return Path(out)
    return (Path(spec.source).parent if spec.source else Path(".")) / spec.name


def _check_existing(path: Path, spec: StudySpec) -> bool:
    """True when ``path`` holds this study (to continue); an error when it holds anything else."""
    meta = path / "study.json"
    if not path.exists():
        return False
    if not meta.exists():
        raise RunError(f"{path}: exists and is not a study folder (no study.json); choose another --out")
    try:
        old = json.loads(meta.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{meta}: unreadable study description ({err})") from err
    if old.get("format") != STUDY_FORMAT or old.get("version") != STUDY_VERSION:
        raise RunError(f"{meta}: not a study folder of this pcmodels ({old.get('format')} version "
                       f"{old.get('version')}, expected {STUDY_FORMAT} version {STUDY_VERSION}); choose another --out")
    if old.get("identity") != spec.identity():
        new = spec.to_dict()
        diff = sorted(k for k in new if k not in ("cluster", "trials", "source") and old.get("study", {}).get(k) != new[k])
        raise RunError(f"{path}: holds a study of another description (differs in {', '.join(diff) or 'identity'}); "
                       "use another --out to start a new study")
    return True


def _create(path: Path, spec: StudySpec) -> None:
    tmp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "trials").mkdir(parents=True)
        write_json_atomic(tmp / "study.json", {"format": STUDY_FORMAT, "version": STUDY_VERSION, "identity": spec.identity(),
                                               "study": spec.to_dict()})
        os.rename(tmp, path)
    except BaseException:
        remove_tree(tmp)
        raise


def run_study(study: StudySpec | str | os.PathLike, out: str | os.PathLike | None = None, *, client=None,
              progress: bool = True) -> StudyResult:
    """Run (or continue) a study to its budget of trials.

    Args:
        study: a validated :class:`StudySpec` or the path of a study file.
        out: the study folder (default: beside the study file, named after the study).
        client: a ``distributed.Client`` to run the trials on (default: the study's ``cluster:``).
        progress: one line on stderr per trial started and ended.

    Raises:
        ConfigError: the study file is invalid (nothing is created).
        RunError: ``out`` holds something else than this study, or the study's database cannot be
            opened or holds another study of this name (then nothing is created).
        ClusterError: the cluster cannot be started or reached.
    """
    import optuna
    from distributed import wait

    t0 = time.perf_counter()
    spec = study if isinstance(study, StudySpec) else load_study(study)
    path = study_folder(spec, out)
    exists = _check_existing(path, spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def say(message: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    url = storage_url(spec.storage, path)
    storage = ostudy = None
    if spec.storage is not None:  # first, so that a database that refuses leaves no folder behind
        storage = open_storage(url)
        ostudy = _optuna_study(storage, spec, url)
    with study_client(spec.cluster, client) as c:
        if not exists:
            _create(path, spec)
        if storage is None:  # the default database lives in the folder
            storage = open_storage(url)
            ostudy = _optuna_study(storage, spec, url)
        trials = ostudy.get_trials(deepcopy=False)
        queue = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        to_ask = spec.trials - sum(t.state != optuna.trial.TrialState.WAITING for t in trials)
        finished = sum(t.state.is_finished() for t in trials)
        if trials:
            say(f"study {path}: {finished} trials finished, {len(queue)} to resume, {max(0, to_ask)} to start")
        distributions = {p.key: p.distribution() for p in spec.space}
        slots = max(1, sum(c.nthreads().values()))
        pending: dict[Any, int] = {}
        submitted = 0

        def submit(frozen) -> None:
            nonlocal submitted
            task = TrialTask(url, spec.name, frozen._trial_id, frozen.number, dict(frozen.params), spec,
                             str(trial_dir(path, frozen.number).resolve()))
            key = f"pcmodels-trial-{frozen.number}-{uuid.uuid4().hex[:8]}"
            pending[c.submit(run_trial, task, key=key, pure=False)] = frozen._trial_id
            submitted += 1
            say(f"trial {frozen.number} {'resumed' if frozen in queue else 'started'} ({_params(frozen.params)})")

        while queue or to_ask > 0 or pending:
            while len(pending) < slots and (queue or to_ask > 0):
                if queue:
                    submit(queue[0])
                    queue.pop(0)
                else:
                    trial = ostudy.ask(distributions)
                    to_ask -= 1
                    submit(storage.get_trial(trial._trial_id))
            done, _ = wait(list(pending), return_when="FIRST_COMPLETED")
            for future in done:
                trial_id = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 - the worker died: the trial failed, the study goes on
                    line = str(err).splitlines()[0] if str(err) else type(err).__name__
                    if not storage.get_trial(trial_id).state.is_finished():
                        storage.set_trial_user_attr(trial_id, "error", line)
                        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
                    outcome = {"number": storage.get_trial(trial_id).number, "state": "fail", "error": line}
                say(_describe(outcome, spec))
            _write_results(path, ostudy, spec)
        result = _write_results(path, ostudy, spec)
    best = result["best"]
    say(f"study {path}: {len(result['trials'])} trials; best: "
        + (f"trial {best['number']} {spec.metric} {best['value']:.4g} ({_params(best['params'])})" if best else "none"))
    return StudyResult(path, result["trials"], best, time.perf_counter() - t0, submitted)


def _optuna_study(storage, spec: StudySpec, url: str):
    """The study in Optuna's storage, created or loaded. A shared database may hold other studies:
    one of this name but another description (another folder's study) is refused, not mixed in."""
    import optuna

    ostudy = optuna.create_study(study_name=spec.name, storage=storage, sampler=spec.make_sampler(),
                                 pruner=spec.pruner.make(), direction=spec.direction, load_if_exists=True)
    identity = ostudy.user_attrs.get("pcmodels_identity")
    if identity is None:
        ostudy.set_user_attr("pcmodels_identity", spec.identity())
    elif identity != spec.identity():
        raise RunError(f"storage: {url} holds another study named {spec.name!r} (another description); "
                       "rename this study (name:) or use another database")
    return ostudy


def _write_results(path: Path, ostudy, spec: StudySpec) -> dict:
    import optuna

    rows = []
    for t in ostudy.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
                     "step": t.user_attrs.get("step"), "seconds": t.user_attrs.get("seconds"),
                     "error_of_value": t.user_attrs.get("error_of_value"), "error": t.user_attrs.get("error"),
                     "run": str(trial_dir(path, t.number)),
                     "reports": {str(k): v for k, v in sorted(t.intermediate_values.items())}})
    complete = [r for r in rows if r["state"] == optuna.trial.TrialState.COMPLETE.name.lower()]
    sign = 1 if spec.direction == "minimize" else -1
    best = min(complete, key=lambda r: sign * r["value"]) if complete else None
    result = {"study": spec.name, "metric": spec.metric, "direction": spec.direction, "trials": rows, "best": best}
    write_json_atomic(path / "results.json", result)
    return result


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _describe(outcome: dict, spec: StudySpec) -> str:
    n, state = outcome["number"], outcome["state"]
    if state == "complete":
        error = outcome.get("error_of_value")  # None: a metric without an error (an AUC)
        return (f"trial {n} complete: {spec.metric} {outcome['value']:.4g}"
                + ("" if error is None else f" +- {error:.2g}")
                + f" ({outcome.get('step')} steps, {outcome.get('seconds', 0):.0f} s)")
    if state == "pruned":
        return f"trial {n} pruned at {outcome.get('pruned', 'a report')}"
    return f"trial {n} failed: {outcome.get('error', 'unknown error')}"
