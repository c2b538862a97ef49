"""The real-vs-real floor's two samples: disjoint halves of the real sample; and the refusal to
compare a sample with itself, which would score below the floor as a perfect model."""

from __future__ import annotations

import os

import numpy as np

from ..errors import EvaluationError

__all__ = ["floor_halves", "refuse_self_comparison"]


def refuse_self_comparison(real: str | os.PathLike, generated: str | os.PathLike) -> None:
    """Raise :class:`EvaluationError` when ``generated`` is the ``real`` sample itself (the same
    file or directory under any spelling: a link, a relative path, a catalog name)."""
    from pcdata.catalog.shared import resolve_reference

    a, b = resolve_reference(real), resolve_reference(generated)
    try:
        same = os.path.samefile(a, b)
    except OSError:
        return  # one does not exist: opening it names it
    if same:
        raise EvaluationError(f"generated: {generated} is the real sample itself: a sample compared with itself "
                              "scores as perfect; give the generated sample")


def floor_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, sorted, equally large random halves of ``range(n)`` (``n // 2`` each; an odd
    last row is left out), so that the floor compares samples of one size that share no row."""
    order = rng.permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half:2 * half])
