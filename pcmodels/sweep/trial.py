"""One trial, as a Dask task: train (reporting to the pruner), score, and record the outcome.

The worker writes the outcome into the study's storage itself, so a trial that finished is
finished in the database even when the client that submitted it is gone. A trial already
finished there is never run again; an unfinished one resumes from its run folder's checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrialTask", "run_trial", "open_storage"]


@dataclass(frozen=True)
class TrialTask:
    storage: str
    study_name: str
    trial_id: int
    number: int
    params: dict
    spec: Any  # StudySpec
    run_dir: str


def open_storage(url: str):
    """Optuna's RDB storage at ``url`` (SQLite, PostgreSQL, MySQL); SQLite waits up to a minute for
    a lock (several workers write).

    Raises:
        RunError: the database cannot be opened or reached.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from ..errors import RunError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except SQLAlchemyError as err:
        line = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise RunError(f"storage: cannot open {url} ({line})") from err


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this worker process by an earlier trial
        pass


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Run one trial to its end (complete, pruned or failed) and record it; returns the outcome."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _single_thread()
    with _trial_lock(task.run_dir):
        return _run_locked(task)


@contextlib.contextmanager
def _trial_lock(run_dir: str):
    """One process per trial: a task resubmitted by a restarted client waits here while the task
    of the client that died still runs on a worker (its lock goes when its process does), then
    finds the trial finished in the storage or resumes it from its checkpoint."""
    import fcntl

    path = Path(run_dir).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_locked(task: TrialTask) -> dict[str, Any]:
    import optuna
    from threadpoolctl import threadpool_limits

    from ..errors import ConfigError, EvaluationError
    from ..training import train
    from .scoring import score_run, scorer
    from .study import trial_config

    spec = task.spec
    storage = open_storage(task.storage)
    # The worker's study object only reports and tells: a plain sampler, the study's pruner.
    study = optuna.load_study(study_name=task.study_name, storage=storage, pruner=spec.pruner.make(),
                              sampler=optuna.samplers.RandomSampler())
    frozen = storage.get_trial(task.trial_id)
    if frozen.state.is_finished():
        return _outcome(task, frozen.state.name.lower(), frozen.value, frozen.user_attrs)
    trial = optuna.trial.Trial(study, task.trial_id)
    reported = set(frozen.intermediate_values)
    t0 = time.perf_counter()

    def report(step: int, validation: dict[str, float], final: bool) -> None:
        key = spec.pruner.on or next(iter(validation))
        if key not in validation:
            raise ConfigError(f"pruner.on: {spec.model} reports {', '.join(validation)} in validation, not {key!r}")
        trial.set_user_attr("step", step)
        if step not in reported:  # a resumed trial may validate a step again
            trial.report(validation[key], step)
            reported.add(step)
        # At the last step the training is spent: pruning then would save nothing and lose a result.
        if not final and trial.should_prune():
            raise optuna.TrialPruned(f"step {step}: {key} {validation[key]:.4g}")

    try:
        with threadpool_limits(1):
            config = trial_config(spec, task.params)
            trial.set_user_attr("run", task.run_dir)
            result = train(spec.store, task.run_dir, config, device=spec.device, progress=False,
                           validate_every=spec.pruner.every, on_validation=report)
            trial.set_user_attr("step", result.steps)
            trial.set_user_attr("train_seconds", round(time.perf_counter() - t0, 2))
            report_ = score_run(task.run_dir, spec.store, split=spec.split, num=spec.num, seed=spec.seed,
                                kind=spec.kind, device=spec.device)
        value, error = scorer(spec.kind).read(report_, spec.metric)
        if value is None:
            raise EvaluationError(f"{spec.metric}: the evaluation gave no finite value")
        trial.set_user_attr("error_of_value", error)  # None: a metric without an error (an AUC)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        study.tell(trial, value)
        return _outcome(task, "complete", value, storage.get_trial(task.trial_id).user_attrs)
    except optuna.TrialPruned as pruned:
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        trial.set_user_attr("pruned", str(pruned))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return _outcome(task, "pruned", None, storage.get_trial(task.trial_id).user_attrs)
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded, the study goes on
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        trial.set_user_attr("error", line)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return _outcome(task, "fail", None, {"error": line})


def _outcome(task: TrialTask, state: str, value: float | None, attrs: dict) -> dict[str, Any]:
    return {"number": task.number, "state": state, "value": value, "params": dict(task.params), **attrs}
