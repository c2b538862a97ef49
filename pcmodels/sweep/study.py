"""The study description (``STUDY.yaml``), validated whole before anything is created.

::

    name: lr-width              # optional; default: the file's stem
    store: top30.zarr           # path (relative to the study file's folder) or catalog reference
    model: epic-fm
    config: tiny                # a shipped config role of the model, or a YAML path (default: the model's)
    set: {train.ema: 0.99}      # fixed overrides of the base config (optional)
    space:                      # dotted config keys -> a list of values or a range
      optim.net.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      network.hidden: [16, 32, 64]
    sampler: tpe                # grid | random | tpe (Optuna's samplers)
    metric: w1m                 # a key of the evaluation report of the store's kind (jets: w1m ...; showers: auc_low ...)
    direction: minimize         # default: the evaluation's (every metric is better lower)
    budget: {trials: 8, steps: 60}       # and/or epochs: N, minutes: M (wall time per trial)
    pruner: {name: asha, every: 10}      # asha | median | none; `every`: validate every N steps
    evaluation: {split: val, num: 2000}  # the trial's score: generated jets vs this real split
    seed: 0                     # the sampler's and the trials' training seed
    cluster: {workers: 2}       # where trials run: a cluster description as ``--cluster`` (pcdata.cluster)
    device: cpu
    storage: sqlite:///other/optuna.db  # Optuna's RDB storage (default: STUDY/optuna.db); postgresql://, mysql://

Every problem is one :class:`~pcmodels.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pcdata._io import read_yaml_mapping
from pcdata.errors import PcdataError

from ..errors import ConfigError

__all__ = ["StudySpec", "Param", "PrunerSpec", "load_study", "study_from_dict", "trial_config"]

KEYS = ("name", "store", "model", "config", "set", "space", "sampler", "metric", "direction", "budget", "pruner",
        "evaluation", "seed", "cluster", "device", "storage")
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("asha", "median", "none")
#: The databases Optuna's RDB storage is tested against (SQLAlchemy backend names).
STORAGES = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a dotted config key with a list of ``choices`` or a ``low``..``high``
    range (``log`` spaced; ``integer`` when the config's value is an integer)."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def distribution(self):
        import optuna.distributions as d

        if self.choices is not None:
            return d.CategoricalDistribution(self.choices)
        if self.integer:
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class PrunerSpec:
    """Early stopping on the validation metric the model reports during training (``on``; default
    the model's first, e.g. ``val_loss``), every ``every`` steps."""

    name: str = "none"
    every: int | None = None
    on: str | None = None
    min_resource: int | None = None
    reduction_factor: int = 3
    startup_trials: int = 2
    warmup_steps: int = 0

    def make(self):
        import optuna

        if self.name == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.min_resource or self.every,
                                                          reduction_factor=self.reduction_factor)
        if self.name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials,
                                               n_warmup_steps=self.warmup_steps)
        return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class StudySpec:
    """A validated study. ``base`` is the resolved base config (a plain mapping); ``kind`` the
    store's kind (what scores the trials, :mod:`.scoring`); ``storage`` Optuna's storage URL (None:
    ``STUDY/optuna.db``); ``source`` the file."""

    name: str
    store: str
    model: str
    base: dict
    space: tuple[Param, ...]
    sampler: str
    metric: str
    direction: str
    trials: int
    pruner: PrunerSpec
    split: str = "val"
    num: int = 2000
    seed: int = 0
    cluster: dict = field(default_factory=dict)
    device: str = "cpu"
    kind: str = "jets"
    storage: str | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["space"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()} for p in self.space]
        return d

    def identity(self) -> str:
        """A digest of what makes two descriptions the same study (the cluster and the number of
        trials may change between invocations: a study can be continued elsewhere or extended).

        The storage is part of it: the trial folders are named after the storage's trial numbers,
        so the same folder pointed at another database would pair its new trials with the old
        trials' run folders (resuming one trial from another's checkpoint)."""
        d = self.to_dict()
        for key in ("cluster", "trials", "source"):
            d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def make_sampler(self):
        import optuna

        if self.sampler == "grid":
            return optuna.samplers.GridSampler({p.key: list(p.choices) for p in self.space}, seed=self.seed)
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.TPESampler(seed=self.seed)


def trial_config(spec: StudySpec, params: Mapping[str, Any]):
    """The :class:`RunConfig` of one trial: the base config with the trial's values."""
    from ..config import RunConfig

    d = json.loads(json.dumps(spec.base))
    for key, value in params.items():
        _set(d, key, value)
    return RunConfig.from_dict(d, where="config")


# -- parsing -------------------------------------------------------------------------------------------
def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study file (opens the store read-only; creates nothing)."""
    path = Path(path)
    d = read_yaml_mapping(path, what="study file", error=ConfigError)
    try:
        return study_from_dict(d, base_dir=path.parent, default_name=path.stem, source=str(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def study_from_dict(d: Mapping[str, Any], *, base_dir: str | os.PathLike = ".", default_name: str = "study",
                    source: str = "") -> StudySpec:
    """Validate a study mapping; messages start with the offending key."""
    from ..config import RunConfig
    from ..registry import get_model

    unknown = sorted(set(d) - set(KEYS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    base_dir = Path(base_dir)
    for key in ("store", "model", "space", "metric"):
        if d.get(key) in (None, ""):
            raise ConfigError(f"{key}: missing")
    name = _string(d.get("name", default_name), "name")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"name: {name!r} is not a folder name")
    model = _string(d["model"], "model")
    spec = get_model(model, where="model")
    seed = _integer(d.get("seed", 0), "seed", minimum=0)
    device = _string(d.get("device", "cpu"), "device")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected cpu or cuda, got {device!r}")

    # The base config: the model's shipped role or a file, then `set:`, then the budget.
    base = _base_config(d.get("config"), spec, base_dir)
    fixed = d.get("set") or {}
    if not isinstance(fixed, Mapping):
        raise ConfigError(f"set: expected a mapping of dotted keys to values, got {fixed!r}")
    budget = _mapping(d.get("budget"), "budget")
    unknown = sorted(set(budget) - {"trials", "steps", "epochs", "minutes"})
    if unknown:
        raise ConfigError(f"budget.{unknown[0]}: unknown key (known: trials, steps, epochs, minutes)")
    if "steps" in budget and "epochs" in budget:
        raise ConfigError("budget: give steps or epochs, not both")
    train = base.setdefault("train", {})
    if "steps" in budget:
        train.pop("epochs", None)
        train["steps"] = _integer(budget["steps"], "budget.steps", minimum=1)
    if "epochs" in budget:
        train.pop("steps", None)
        train["epochs"] = _integer(budget["epochs"], "budget.epochs", minimum=1)
    if "minutes" in budget:
        train["max_minutes"] = _number(budget["minutes"], "budget.minutes")
        if not train["max_minutes"] > 0:
            raise ConfigError(f"budget.minutes: must be > 0, got {budget['minutes']}")
    base["train"]["seed"] = seed
    try:
        resolved = RunConfig.from_dict(base, where="config")
    except ConfigError as err:
        raise ConfigError(f"config: {err}") from None
    for key, value in fixed.items():
        _known_key(resolved.to_dict(), str(key), "set")
        _set(base, str(key), value)
    try:
        base = RunConfig.from_dict(base, where="config").to_dict()
    except ConfigError as err:
        raise ConfigError(f"set: {err}") from None

    space = _space(d["space"], base, model)
    sampler = _string(d.get("sampler", "tpe"), "sampler")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if sampler == "grid":
        ranged = [p.key for p in space if p.choices is None]
        if ranged:
            raise ConfigError(f"space.{ranged[0]}: the grid sampler needs a list of values, not a range")
    grid = math.prod(len(p.choices) for p in space) if sampler == "grid" else None
    trials = _integer(budget.get("trials", grid), "budget.trials", minimum=1) if budget.get("trials", grid) else None
    if trials is None:
        raise ConfigError("budget.trials: missing (how many trials to run)")
    if grid is not None and trials > grid:
        raise ConfigError(f"budget.trials: {trials} is more than the grid's {grid} points")

    metric = _string(d["metric"], "metric")
    direction = d.get("direction")
    if direction is not None and _string(direction, "direction") not in ("minimize", "maximize"):
        raise ConfigError(f"direction: expected minimize or maximize, got {direction!r}")
    pruner = _pruner(d.get("pruner", "none"), base)
    evaluation = _mapping(d.get("evaluation"), "evaluation")
    unknown = sorted(set(evaluation) - {"split", "num", "seed"})
    if unknown:
        raise ConfigError(f"evaluation.{unknown[0]}: unknown key (known: split, num, seed)")
    split = _string(evaluation.get("split", "val"), "evaluation.split")
    num = _integer(evaluation.get("num", 2000), "evaluation.num", minimum=1)
    eval_seed = _integer(evaluation.get("seed", seed), "evaluation.seed", minimum=0)
    cluster = _cluster(d.get("cluster"))
    storage = _storage(d.get("storage"), base_dir)

    store, scorer = _store(d["store"], base_dir, spec, metric, split, num)
    return StudySpec(name=name, store=store, model=model, base=base, space=space, sampler=sampler, metric=metric,
                     direction=direction or scorer.direction, trials=trials, pruner=pruner, split=split, num=num,
                     seed=eval_seed, cluster=cluster, device=device, kind=scorer.kind, storage=storage, source=source)


def _base_config(value: Any, spec, base_dir: Path) -> dict:
    from ..config import RunConfig

    if value is None:
        value = "default" if "default" in spec.configs else "tiny"
    value = _string(value, "config")
    if value in spec.configs:
        path = spec.config_path(value)
    else:
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        if not path.exists():
            raise ConfigError(f"config: {value!r} is neither a config of {spec.name} ({', '.join(spec.configs)}) "
                              "nor a file")
    d = dict(read_yaml_mapping(path, what="config file", error=ConfigError, allow_empty=True))
    if d.get("model", spec.name) != spec.name:
        raise ConfigError(f"config: {path} is a config of {d['model']!r}, the study's model is {spec.name!r}")
    d["model"] = spec.name
    try:
        RunConfig.from_dict(d, where=str(path))
    except ConfigError as err:
        raise ConfigError(f"config: {err}") from None
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}


def _space(value: Any, base: dict, model: str) -> tuple[Param, ...]:
    from ..config import RunConfig

    if not isinstance(value, Mapping):
        raise ConfigError(f"space: expected a mapping of dotted config keys to values or ranges, got {value!r}")
    if not value:
        raise ConfigError("space: empty; name at least one hyperparameter")
    params = []
    for key, entry in value.items():
        key = str(key)
        where = f"space.{key}"
        current = _known_key(base, key, "space", model)
        if key.startswith("train.") and key.split(".")[1] in ("steps", "epochs", "max_minutes", "seed"):
            raise ConfigError(f"{where}: set by the study's budget and seed, not searched")
        if isinstance(entry, (list, tuple)):
            if not entry:
                raise ConfigError(f"{where}: empty list of values")
            if any(not isinstance(v, (bool, int, float, str)) for v in entry):
                raise ConfigError(f"{where}: values must be numbers, strings or booleans, got {list(entry)!r}")
            if isinstance(current, float):  # YAML 1.1 reads 1e-3 (no dot) as a string
                entry = [_number(v, where) if isinstance(v, str) else v for v in entry]
            if len(set(map(repr, entry))) != len(entry):
                raise ConfigError(f"{where}: a value is listed twice in {list(entry)!r}")
            param = Param(key, choices=tuple(entry))
            candidates = list(entry)
        elif isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"low", "high", "log", "step"})
            if unknown:
                raise ConfigError(f"{where}.{unknown[0]}: unknown key (a range has low, high, log, step)")
            if "low" not in entry or "high" not in entry:
                raise ConfigError(f"{where}: a range needs low and high")
            integer = isinstance(current, int) and not isinstance(current, bool)
            if not isinstance(current, (int, float)) or isinstance(current, bool):
                raise ConfigError(f"{where}: a range needs a numeric setting; {key} is {current!r} (give a list)")
            low, high = _number(entry["low"], f"{where}.low"), _number(entry["high"], f"{where}.high")
            log = entry.get("log", False)
            if not isinstance(log, bool):
                raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
            step = _number(entry["step"], f"{where}.step") if entry.get("step") is not None else None
            if not low < high:
                raise ConfigError(f"{where}: low {low} must be below high {high}")
            if log and low <= 0:
                raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
            if log and step is not None:
                raise ConfigError(f"{where}: give log or step, not both")
            if integer and (low != int(low) or high != int(high)):
                raise ConfigError(f"{where}: {key} is an integer; low and high must be integers")
            param = Param(key, low=low, high=high, log=log, step=step, integer=integer)
            candidates = [int(low), int(high)] if integer else [low, high]
        else:
            raise ConfigError(f"{where}: expected a list of values or a range {{low, high}}, got {entry!r}")
        for v in candidates:  # every bound and choice must make a valid config
            d = json.loads(json.dumps(base))
            _set(d, key, v)
            try:
                RunConfig.from_dict(d, where="config")
            except ConfigError as err:
                raise ConfigError(f"{where}: value {v!r} is not valid ({err})") from None
        params.append(param)
    return tuple(params)


def _pruner(value: Any, base: dict) -> PrunerSpec:
    if isinstance(value, str):
        value = {"name": value}
    value = _mapping(value, "pruner")
    unknown = sorted(set(value) - {"name", "every", "on", "min_resource", "reduction_factor", "startup_trials",
                                   "warmup_steps"})
    if unknown:
        raise ConfigError(f"pruner.{unknown[0]}: unknown key")
    name = _string(value.get("name", "none"), "pruner.name")
    if name not in PRUNERS:
        raise ConfigError(f"pruner: expected one of {', '.join(PRUNERS)}, got {name!r}")
    train = base["train"]
    every = value.get("every")
    if every is None and name != "none":
        # Default: four reports over a run in steps; per epoch otherwise.
        every = max(1, train["steps"] // 4) if train.get("steps") else None
    every = None if every is None else _integer(every, "pruner.every", minimum=1)
    on = value.get("on")
    if on is not None:
        on = _string(on, "pruner.on")
    if name != "none" and base["train"].get("val_batches", 1) == 0:
        raise ConfigError("pruner: the base config has train.val_batches 0, so no validation metric to prune on")
    return PrunerSpec(name=name, every=every, on=on,
                      min_resource=None if value.get("min_resource") is None else
                      _integer(value["min_resource"], "pruner.min_resource", minimum=1),
                      reduction_factor=_integer(value.get("reduction_factor", 3), "pruner.reduction_factor", minimum=2),
                      startup_trials=_integer(value.get("startup_trials", 2), "pruner.startup_trials", minimum=0),
                      warmup_steps=_integer(value.get("warmup_steps", 0), "pruner.warmup_steps", minimum=0))


def _store(value: Any, base_dir: Path, spec, metric: str, split: str, num: int):
    """The store's reference and the :class:`~.scoring.Scorer` of its kind, with the metric and
    the evaluation's split and size checked against that evaluation."""
    from pcdata import open_store

    from .scoring import SCORERS

    ref = _string(value, "store")
    local = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if local.exists():
        ref = str(local.resolve())
    try:
        store = open_store(ref)
    except PcdataError as err:  # the store's own error, with this key in front
        raise ConfigError(f"store: {str(err).splitlines()[0]}") from None
    if store.kind not in spec.kinds:
        raise ConfigError(f"store: a store of {store.kind}; {spec.name} learns {', '.join(spec.kinds)}")
    scorer = SCORERS.get(store.kind)
    if scorer is None:
        raise ConfigError(f"store: sweeps score {', '.join(SCORERS)}; {store.path} holds {store.kind}")
    if metric not in scorer.metrics:
        raise ConfigError(f"metric: {metric!r} is not a metric of the {scorer.title} ({', '.join(scorer.metrics)})")
    if num < scorer.min_num:
        raise ConfigError(f"evaluation.num: the {scorer.title} needs at least {scorer.min_num} {scorer.clouds}, "
                          f"got {num}")
    try:
        n = len(store.split_indices(split))
    except KeyError:
        raise ConfigError(f"evaluation.split: {store.path} has no split {split!r}") from None
    if n < scorer.min_real:
        raise ConfigError(f"evaluation.split: split {split!r} of {store.path} has {n} clouds "
                          f"(the {scorer.title} needs {scorer.min_real})")
    return (str(store.path) if Path(str(store.path)).exists() else ref), scorer


def _storage(value: Any, base_dir: Path) -> str | None:
    """Optuna's storage URL, checked without connecting or creating anything (None: the default,
    ``STUDY/optuna.db``). A relative SQLite path is relative to the study file's folder."""
    if value is None:
        return None
    text = _string(value, "storage")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(f"storage: {text!r} is not a database URL (sqlite:///PATH, postgresql://HOST/DB, "
                          "mysql://HOST/DB)") from None
    backend = url.get_backend_name()
    if backend not in STORAGES:
        raise ConfigError(f"storage: {url.drivername!r} is not a database Optuna's storage serves here "
                          f"(one of {', '.join(STORAGES)})")
    if url.password is not None:
        # study.json records the URL, and every worker's task carries it.
        raise ConfigError("storage: the URL holds a password; give it to the database client instead "
                          "(PostgreSQL: PGPASSWORD or ~/.pgpass; MySQL: an option file, ?read_default_file=...)")
    if backend == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            raise ConfigError("storage: an in-memory SQLite database dies with the client; give a file "
                              "(sqlite:///PATH)")
        path = Path(url.database).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.parent.is_dir():
            raise ConfigError(f"storage: {path.parent} is not a folder (the SQLite file {path.name} goes there)")
        if path.is_dir():
            raise ConfigError(f"storage: {path} is a folder, not a database file")
        return url.set(database=str(path.resolve())).render_as_string(hide_password=False)
    try:  # the driver must be importable here; the workers need it too
        url.get_dialect().import_dbapi()
    except ImportError as err:
        raise ConfigError(f"storage: {url.drivername} needs its database driver ({err}); install it where the "
                          "client and the workers run") from None
    return url.render_as_string(hide_password=False)


# -- small checks ------------------------------------------------------------------------------------
def _known_key(config: dict, key: str, section: str, model: str | None = None) -> Any:
    """The value at ``key`` in a resolved config mapping, or an error naming the key."""
    node: Any = config
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:i]) or "the config"
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "no sub-keys"
            whose = f" of {model}" if model else ""
            raise ConfigError(f"{section}.{key}: not a setting{whose} ({where} has {known})")
        node = node[part]
    if isinstance(node, dict):
        raise ConfigError(f"{section}.{key}: a section, not a setting (it has {', '.join(sorted(node))})")
    return node


def _set(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def _mapping(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return dict(value)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _integer(value: Any, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def cluster_description(value: Any) -> dict:
    """The study's ``cluster:`` as a checked :class:`pcdata.cluster.ClusterSpec` mapping (what
    ``pcdata ingest --cluster`` reads; ``scheduler: ADDR`` is short for a running scheduler)."""
    from pcdata.cluster import ClusterSpec
    from pcdata.errors import ClusterError

    doc = dict(_mapping(value, "cluster"))
    if "scheduler" in doc:
        doc = {"kind": "scheduler", "address": doc.pop("scheduler"), **doc}
    try:
        return ClusterSpec.from_dict(doc).to_dict()
    except ClusterError as err:
        raise ConfigError(f"cluster.{err}") from err


_cluster = cluster_description
