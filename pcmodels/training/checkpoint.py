"""Checkpoints in a safe format: tensors in safetensors, everything else in JSON. Nothing is
unpickled when a run is loaded, so a checkpoint from elsewhere cannot run code.

``RUN/checkpoints/step-000200/{tensors.safetensors, meta.json}`` is written into a temporary
directory and renamed into place; ``RUN/checkpoints/last.json`` then points at it (atomic replace),
so an interruption at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import torch

from pcdata._io import fsync_dir, remove_tree, temp_sibling, write_json_atomic
from pcdata.store.lock import process_alive

from ..errors import RunError

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "remove_temporaries", "flatten_optimizer", "unflatten_optimizer"]


def flatten_optimizer(state: dict, prefix: str = "optim.") -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer ``state_dict`` as flat tensors named ``{prefix}{param index}.{key}`` plus JSON-able rest."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "optim.") -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            idx, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict, *, keep: int = 2) -> Path:
    from safetensors.torch import save_file

    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    # The writer's pid and host in the name: a later run removes it only once that process is gone.
    tmp = temp_sibling(final, f"tmp-{os.getpid()}@{socket.gethostname()}")
    tmp.mkdir()
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # pragma: no mutate (layout only)
        mode = (tmp / "meta.json").stat().st_mode & 0o777  # as open() made it: 0666 less the umask
        for f in ("tensors.safetensors", "meta.json"):
            _durable(tmp / f, mode)
        fsync_dir(tmp)
        remove_tree(final)
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        remove_tree(tmp)
        raise
    write_json_atomic(root / "last.json", {"step": step, "path": final.name})
    # Only after the pointer moved: older checkpoints beyond the newest ``keep`` can go.
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        remove_tree(old)
    return final


def _durable(path: Path, mode: int) -> None:
    """On disk before ``last.json`` names it, with the mode of the run's other files (safetensors
    writes its file 0600; a run folder shared by a group must be readable by the group)."""
    os.chmod(path, mode)
    with open(path, "rb+") as f:  # pragma: no mutate (a read-only descriptor syncs the file as well)
        os.fsync(f.fileno())


# A temporary checkpoint of another host (whose process cannot be checked from here), or of an
# unknown writer, is taken as abandoned after this long: no checkpoint takes an hour to write.
_FOREIGN_TEMP_AGE_S = 3600.0


def remove_temporaries(run: Path) -> None:
    """Drop checkpoint directories a killed run left half-written (``.step-*.tmp-<pid>@<host>-*``):
    never named by ``last.json``, so nothing reads them. Those of a process still running on this
    host (another trainer writing into the same folder) are left alone."""
    here = socket.gethostname()
    for tmp in (Path(run) / "checkpoints").glob(".step-*.tmp-*"):
        owner = tmp.name.split(".tmp-", 1)[1].rsplit("-", 1)[0]
        pid, _, host = owner.partition("@")
        if host == here and pid.isdigit():
            gone = not process_alive(int(pid))
        else:
            try:
                gone = time.time() - tmp.stat().st_mtime > _FOREIGN_TEMP_AGE_S
            except FileNotFoundError:
                continue
        if gone:
            remove_tree(tmp)


def latest_checkpoint(run: Path) -> Path | None:
    pointer = Path(run) / "checkpoints" / "last.json"
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text())["path"]
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise RunError(f"{pointer}: unreadable checkpoint pointer ({err})") from err
    # Only a checkpoint of this run: a name like step-0000200, never a path leading elsewhere.
    if not isinstance(name, str) or not re.fullmatch(r"step-\d{7,}", name):
        raise RunError(f"{pointer}: unreadable checkpoint pointer (path {name!r} is not a step-NNNNNNN name)")
    path = pointer.parent / name
    if not (path / "tensors.safetensors").exists():
        raise RunError(f"{pointer}: points at {name}, which is missing")
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors (safetensors, no pickle) and the JSON metadata of one checkpoint directory."""
    from safetensors.torch import load_file

    from safetensors import SafetensorError

    tensors_path, meta_path = path / "tensors.safetensors", path / "meta.json"
    try:
        tensors = load_file(str(tensors_path))
    except (OSError, ValueError, SafetensorError) as err:
        raise RunError(f"{tensors_path}: damaged checkpoint ({str(err).splitlines()[0]})") from err
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise RunError(f"{meta_path}: damaged checkpoint ({str(err).splitlines()[0]})") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int) or meta["step"] < 0:
        raise RunError(f"{meta_path}: damaged checkpoint (no step count)")
    return tensors, meta
