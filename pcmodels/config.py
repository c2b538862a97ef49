"""The sectioned training configuration and the one parser every section goes through.

A run is configured by one YAML mapping::

    model: mdma
    data:     {batch_size, pad, cond_fields, num_workers}        -> DataConfig (the trainer's)
    train:    {epochs | steps, seed, ema, log_every, ...}         -> TrainConfig (the trainer's)
    network:  {...}                                                -> the model's network dataclass
    method:   {...}                                                -> the model's method dataclass
    optim:    {<module>: {name, lr, betas, ...}, ...}              -> OptimConfig per optimised module
    sampling: {sampler, steps}                                     -> SamplingConfig, checked by the model

Each section is a frozen dataclass validated by its own component; :func:`parse_section` coerces
values by the field annotations (so YAML 1.1's ``lr: 1e-3``, read as a string, is a number here)
and raises :class:`ConfigError` with the dotted key: ``optim.generator.lr: expected a number,
got 'fast'``. ``--set key=value`` overrides go through :func:`apply_overrides` first.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Mapping

from pcdata._io import read_yaml_mapping

from .errors import ConfigError

__all__ = ["DataConfig", "TrainConfig", "OptimConfig", "SamplingConfig", "RunConfig", "parse_section",
           "section_to_dict", "apply_overrides", "load_config"]

SECTIONS = ("data", "train", "network", "method", "optim", "sampling")


# -- the parser -------------------------------------------------------------------------------------
def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err).split(": ", 1)[1])
        raise ConfigError(f"{key}: expected {' or '.join(errors).replace('expected ', '')}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"unsupported annotation {tp!r} at {key}")  # a programming error, not the user's


def parse_section(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Build the frozen dataclass ``cls`` from a mapping: unknown keys, wrong types and values out
    of range (``ValueError`` from ``__post_init__``) become one :class:`ConfigError` naming the key."""
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
    kwargs = {name: _coerce(v, hints[name], f"{where}.{name}") for name, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}.{err}" if str(err)[:1].isalpha() and ": " in str(err) else f"{where}: {err}") from None


def section_to_dict(obj: Any) -> dict[str, Any]:
    """A section as plain JSON/YAML values (tuples become lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v) if f.init}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(obj)


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ValueError(f"{key}: {message}")


# -- the sections the trainer owns ------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """How clouds are streamed: ``batch_size`` clouds per rank, padded to ``pad`` points (or the
    batch's longest, ``"batch"``), conditioned on the (transformed) ``cond_fields``.

    ``bucket`` sorts windows of that many batches by multiplicity (the loader's bucketing: less
    padding). ``max_points`` caps the padded points of one forward pass: a method that supports
    it cuts a larger batch into chunks of similar multiplicity, each trimmed to its own longest
    cloud, and adds their gradients (the step is the same as on the whole batch; memory is
    bounded by the cap, not by the longest shower times the batch size)."""

    batch_size: int = 256
    pad: int | Literal["batch"] = "batch"
    cond_fields: tuple[str, ...] = ()
    num_workers: int = 0
    bucket: int | None = None
    max_points: int | None = None

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.pad == "batch" or self.pad >= 1, "pad", f"must be 'batch' or >= 1, got {self.pad}")
        _check(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
        _check(self.bucket is None or self.bucket >= 1, "bucket", f"must be >= 1 or null, got {self.bucket}")
        _check(self.max_points is None or self.max_points >= 1, "max_points",
               f"must be >= 1 or null, got {self.max_points}")


@dataclass(frozen=True)
class TrainConfig:
    """Length and bookkeeping: ``epochs`` or ``steps`` (exactly one; the schedules span it), an
    optional wall-time budget per invocation (``max_minutes``: training stops, checkpointed and
    validated, at the first step past it; running again resumes), EMA decay of every trained
    module (0: the EMA copy is the weights), logging, checkpoints, validation batches."""

    epochs: int | None = None
    steps: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    ema: float = 0.999
    log_every: int = 10
    checkpoint_every: int = 200
    val_batches: int = 20
    amp: bool = True

    def __post_init__(self) -> None:
        _check((self.epochs is None) != (self.steps is None), "epochs", "give exactly one of epochs and steps")
        _check((self.epochs or 1) >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        _check((self.steps or 1) >= 1, "steps", f"must be >= 1, got {self.steps}")
        _check(self.max_minutes is None or self.max_minutes > 0, "max_minutes", f"must be > 0, got {self.max_minutes}")
        _check(0 <= self.ema < 1, "ema", f"must be in [0, 1), got {self.ema}")
        for name in ("log_every", "checkpoint_every"):
            _check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        _check(self.val_batches >= 0, "val_batches", f"must be >= 0, got {self.val_batches}")


@dataclass(frozen=True)
class OptimConfig:
    """One optimiser and its schedule: linear warm-up for ``warmup_steps``, then ``cosine`` decay to
    zero over the rest of the run (or ``constant``); gradients clipped to ``grad_clip`` (None: off)."""

    name: Literal["adam", "adamw"] = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        _check(all(0 <= b < 1 for b in self.betas), "betas", f"must be in [0, 1), got {list(self.betas)}")
        _check(self.eps > 0, "eps", f"must be > 0, got {self.eps}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(self.warmup_steps >= 0, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", f"must be > 0 or null, got {self.grad_clip}")


@dataclass(frozen=True)
class SamplingConfig:
    """The default sampler and its number of steps (None: the sampler's own default)."""

    sampler: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        _check(self.steps is None or self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class RunConfig:
    """A resolved configuration: the model's name and every section, each validated."""

    model: str
    data: DataConfig
    train: TrainConfig
    network: Any
    method: Any
    optim: dict[str, OptimConfig]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **{s: section_to_dict(getattr(self, s)) for s in SECTIONS}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config") -> "RunConfig":
        """Validate a whole mapping against the model's registered sections; missing entries take
        the model's defaults (its dataclasses' defaults are the paper settings)."""
        from .registry import get_model

        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        unknown = sorted(set(d) - {"model", *SECTIONS})
        if unknown:
            raise ConfigError(f"{where}: unknown section {unknown[0]!r} (sections: model, {', '.join(SECTIONS)})")
        if "model" not in d:
            raise ConfigError(f"{where}: no model given (set 'model:' or pass --model)")
        spec = get_model(d["model"], where=f"{where}: model")
        optim_in = d.get("optim") or {}
        if not isinstance(optim_in, Mapping):
            raise ConfigError(f"{where}: optim: expected a mapping of {', '.join(spec.optimised)}")
        extra = sorted(set(optim_in) - set(spec.optimised))
        if extra:
            raise ConfigError(f"optim.{extra[0]}: {spec.name} has no optimiser of that name "
                              f"(it has {', '.join(spec.optimised)})")
        optim = {}
        for name in spec.optimised:
            base = section_to_dict(spec.optim_defaults.get(name, OptimConfig()))
            optim[name] = parse_section(OptimConfig, {**base, **(optim_in.get(name) or {})}, f"optim.{name}")
        train_in = dict(d.get("train") or {})
        if train_in.get("epochs") is None and train_in.get("steps") is None:
            train_in["epochs"] = 1
        sampling = parse_section(SamplingConfig, d.get("sampling"), "sampling")
        if sampling.sampler is not None and sampling.sampler not in spec.samplers:
            raise ConfigError(f"sampling.sampler: {sampling.sampler!r} is not a sampler of {spec.name} "
                              f"(choose from {', '.join(spec.samplers)})")
        return cls(model=spec.name, data=parse_section(DataConfig, d.get("data"), "data"),
                   train=parse_section(TrainConfig, train_in, "train"),
                   network=parse_section(spec.network_config, d.get("network"), "network"),
                   method=parse_section(spec.method_config, d.get("method"), "method"), optim=optim,
                   sampling=sampling)


# -- reading and overriding -------------------------------------------------------------------------
def apply_overrides(d: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values read as YAML) to a nested mapping, in order."""
    import yaml

    d = _deep_copy(d)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"overrides: {item!r}: expected key=value, e.g. optim.generator.lr=2e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"overrides: {key}: value {raw!r} is not valid YAML") from err
        parts = key.split(".")
        if parts[0] not in ("model", *SECTIONS):
            raise ConfigError(f"overrides: {key}: unknown section {parts[0]!r} (sections: {', '.join(SECTIONS)})")
        node = d
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"overrides: {key}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return d


def _deep_copy(d: Any) -> Any:
    return {k: _deep_copy(v) for k, v in d.items()} if isinstance(d, Mapping) else d


def load_config(path: str | os.PathLike | None = None, *, model: str | None = None, overrides: tuple[str, ...] = (),
                epochs: int | None = None, steps: int | None = None, batch_size: int | None = None) -> RunConfig:
    """The model's defaults, then the YAML file, then ``--set`` overrides, then the shortcuts.

    ``model`` (``--model``) fills in a file without ``model:`` and must agree with one that has it;
    with no file, the model's registered ``default`` config is the file.
    ``epochs`` and ``steps`` replace each other: giving one clears the other.
    """
    if path is None and model is not None:
        from .registry import get_model

        spec = get_model(model, where="model")
        path = spec.config_path("default") if "default" in spec.configs else None
    where = str(path) if path is not None else "config"
    d: dict[str, Any] = {}
    if path is not None:
        d = dict(read_yaml_mapping(path, what="config file", error=ConfigError, allow_empty=True))
    if model is not None:
        if d.get("model") not in (None, model):
            raise ConfigError(f"model: {model}: the config file {path} is for {d['model']!r}")
        d["model"] = model
    d = apply_overrides(d, overrides)
    train = dict(d.get("train") or {})
    if epochs is not None:
        train.pop("steps", None)
        train["epochs"] = epochs
    if steps is not None:
        train.pop("epochs", None)
        train["steps"] = steps
    d["train"] = train
    if batch_size is not None:
        d["data"] = {**(d.get("data") or {}), "batch_size": batch_size}
    try:
        return RunConfig.from_dict(d, where=where)
    except ConfigError as err:
        msg = str(err)
        # Name the file once, where the message is about one of its keys.
        raise ConfigError(msg if msg.startswith(where) or path is None else f"{where}: {msg}") from None
