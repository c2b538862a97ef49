"""Handing loader batches to other frameworks without a copy (DLPack).

Loader batches are CPU torch tensors over numpy buffers. ``torch.from_dlpack``,
``numpy.from_dlpack`` and ``jax.dlpack.from_dlpack`` (or any consumer of the DLPack protocol)
take them as they are, sharing memory::

    batch = next(iter(loader))
    x = jax.dlpack.from_dlpack(batch["points"])   # no copy on CPU

:func:`to_dlpack` applies such a consumer to every tensor of a batch; :func:`to_numpy` and
:func:`to_jax` are the two common cases. The loader allocates batches in torch's 64-byte aligned
memory because JAX imports only such buffers without a copy; ``index`` and ``counts`` are int64,
which JAX turns into int32 (a copy) unless ``jax_enable_x64`` is set.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

__all__ = ["to_dlpack", "to_numpy", "to_jax"]


def to_dlpack(batch: Mapping[str, Any], consumer: Callable[[Any], Any]) -> dict[str, Any]:
    """Every tensor of ``batch`` passed through a DLPack consumer (e.g. ``jax.dlpack.from_dlpack``).

    Args:
        batch: a loader batch (dict of tensors); other values are passed through unchanged.
        consumer: a function that takes an object with ``__dlpack__`` and returns an array.
    """
    return {k: consumer(v) if hasattr(v, "__dlpack__") else v for k, v in batch.items()}


def to_numpy(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch as numpy arrays sharing the tensors' memory (CPU tensors only)."""
    import numpy as np

    return to_dlpack(batch, np.from_dlpack)


def to_jax(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch as JAX arrays, through DLPack (zero-copy on CPU where JAX accepts the buffer).

    Raises:
        ImportError: JAX is not installed (with the install command).
    """
    try:
        import jax.dlpack
    except ImportError as err:
        raise ImportError("to_jax needs JAX: pip install 'jax[cpu]' (or jax[cuda12] on GPUs)") from err
    return to_dlpack(batch, jax.dlpack.from_dlpack)
