"""The run folder, format ``pcmodels-run`` version 2, and its one owner, :class:`Run`.

::

    RUN/run.json                  format, version, model, the resolved config, the data (DataSpec),
                                  the store (path, fragment checksums, features, attrs), the bound
                                  transforms, the field model's description, world size, packages,
                                  git commit, machine, creation time
    RUN/config.yaml               the resolved config, to read or to train again with
    RUN/fieldmodel.safetensors    the conditioning model (multiplicities and cloud fields)
    RUN/checkpoints/step-NNNNNNN/ tensors.safetensors (module.<name>.*, ema.<name>.*, optim.<name>.*)
                                  + meta.json (step, optimisers, schedules, loader, validation)
    RUN/checkpoints/last.json     the newest complete checkpoint (atomic pointer)
    RUN/log.csv, RUN/tb/          scalars per step (rank 0)

The folder is made complete in a temporary sibling and renamed into place, so a run folder either
holds a run.json or does not exist. Trainer, sampler and evaluator all go through :class:`Run`;
a run of another format or version is refused with its path.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from pcdata._io import check_posix_path, remove_tree, temp_sibling, write_json_atomic

from .conditioning import CloudFieldModel
from .config import RunConfig
from .errors import RunError
from .methods.base import DataSpec, Method
from .training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .training.step import copy_parameters, module_tensors

__all__ = ["Run", "RUN_FORMAT", "RUN_VERSION", "environment"]

RUN_FORMAT, RUN_VERSION = "pcmodels-run", 2


def environment() -> dict[str, Any]:
    """Package versions, the project's git commit (if it runs from a checkout) and the machine."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("pointcloud-platform", "torch", "numpy", "zarr", "jetnet", "safetensors"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    root = Path(__file__).resolve().parent.parent
    commit = None
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            commit = out.stdout.strip() or None
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            commit = f"{commit}+dirty" if commit and dirty else commit
        except (OSError, subprocess.SubprocessError):
            commit = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"packages": packages, "git_commit": commit, "python": platform.python_version(),
            "machine": {"host": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(), "gpu": gpu}}


class Run:
    """A training run folder. Open one with :meth:`open`; the trainer makes one with :meth:`create`."""

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path, self.info = Path(path), info

    # -- making and opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, info: dict[str, Any], fieldmodel: CloudFieldModel) -> "Run":
        """Write a new run folder (complete, then renamed into place)."""
        from safetensors.torch import save_file

        import yaml

        check_posix_path(path)
        path = Path(path)
        info = {"format": RUN_FORMAT, "version": RUN_VERSION, **info, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **environment()}
        tmp = temp_sibling(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            save_file(fieldmodel.tensors(), str(tmp / "fieldmodel.safetensors"))
            (tmp / "config.yaml").write_text(yaml.safe_dump(info["config"], sort_keys=False))
            write_json_atomic(tmp / "run.json", info)
            os.rename(tmp, path)
        except OSError as err:
            remove_tree(tmp)
            raise RunError(f"{path}: cannot create the run folder ({err.strerror or err})") from err
        except BaseException:
            remove_tree(tmp)
            raise
        return cls(path, info)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        path = Path(path)
        meta = path / "run.json"
        if not meta.exists():
            raise RunError(f"{path}: not a training run (no run.json)")
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError, RecursionError) as err:  # RecursionError: brackets nested too deep
            raise RunError(f"{meta}: unreadable run description ({err})") from err
        if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
            raise RunError(f"{meta}: not a {RUN_FORMAT} run (written by pcmodels before run format 2, or not a run); "
                           "train it again with this version")
        if info.get("version") != RUN_VERSION:
            raise RunError(f"{meta}: run format version {info.get('version')!r}; this pcmodels reads version {RUN_VERSION}")
        for key in ("model", "config", "data", "store", "transforms", "fieldmodel", "world_size"):
            if key not in info:
                raise RunError(f"{meta}: no {key!r} entry (damaged run description)")
        return cls(path, info)

    @classmethod
    def exists(cls, path: str | os.PathLike) -> bool:
        return (Path(path) / "run.json").exists()

    # -- what it holds -----------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info["config"], where=str(self.path / "run.json"))

    @property
    def data(self) -> DataSpec:
        return DataSpec.from_dict(self.info["data"])

    @property
    def world_size(self) -> int:
        return int(self.info["world_size"])

    def transforms(self):
        from pcdata.loaders import transform_from_dict

        return transform_from_dict(self.info["transforms"])

    def fieldmodel(self) -> CloudFieldModel:
        from safetensors.torch import load_file

        path = self.path / "fieldmodel.safetensors"
        try:
            return CloudFieldModel.restore(load_file(str(path)), self.info["fieldmodel"])
        except (OSError, ValueError, KeyError) as err:
            raise RunError(f"{path}: missing or damaged conditioning model ({err})") from err

    # -- checkpoints -------------------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.path)

    def save_checkpoint(self, step: int, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
        return save_checkpoint(self.path, step, tensors, meta)

    def load_checkpoint(self, path: Path | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        path = path or self.latest_checkpoint()
        if path is None:
            raise RunError(f"{self.path}: has no checkpoint yet; train first")
        return load_checkpoint(path)

    def load_method(self, device: str = "cpu", *, ema: bool = True) -> tuple[Method, int]:
        """The model with the newest checkpoint's weights (EMA where kept), in eval mode, and its step."""
        from .registry import get_model

        config = self.config
        spec = get_model(config.model, where=str(self.path / "run.json"))
        method = spec.method(config, self.data)
        method.bind_transforms(self.transforms())
        tensors, meta = self.load_checkpoint()
        try:
            for name, module in method.modules.items():
                module.load_state_dict(module_tensors(tensors, name))
                if ema:
                    copy_parameters(module, module_tensors(tensors, name, "ema"))
        except (RuntimeError, KeyError) as err:
            raise RunError(f"{self.latest_checkpoint()}: checkpoint does not fit the model "
                           f"({str(err).splitlines()[0]})") from err
        return method.to(device).eval(), int(meta["step"])
