"""Fixed-step ODE solvers shared by flow matching and the diffusion probability-flow ODE."""

from __future__ import annotations

from typing import Callable, Literal

import torch

__all__ = ["ODE_SOLVERS", "OdeSolver", "integrate", "function_evaluations"]

OdeSolver = Literal["euler", "midpoint", "rk4"]
ODE_SOLVERS: tuple[str, ...] = ("euler", "midpoint", "rk4")
_EVALS = {"euler": 1, "midpoint": 2, "rk4": 4}


def function_evaluations(solver: str, steps: int) -> int:
    """Network calls an ODE solve costs (what sampling time scales with)."""
    return _EVALS[solver] * steps


def integrate(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t0: float,
    t1: float,
    *,
    steps: int,
    solver: OdeSolver = "midpoint",
) -> torch.Tensor:
    """Integrate ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` (either direction) in ``steps`` equal steps.

    ``f`` receives ``t`` as a ``[B]`` tensor (one time per cloud).
    """
    if solver not in _EVALS:
        raise ValueError(f"unknown ODE solver {solver!r} (choose from {', '.join(ODE_SOLVERS)})")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    h = (t1 - t0) / steps
    batch = x.shape[0]
    at = lambda s: torch.full((batch,), s, device=x.device, dtype=torch.float32)  # noqa: E731
    for k in range(steps):
        t = t0 + k * h
        if solver == "euler":
            x = x + h * f(x, at(t))
        elif solver == "midpoint":
            x = x + h * f(x + 0.5 * h * f(x, at(t)), at(t + 0.5 * h))
        else:
            k1 = f(x, at(t))
            k2 = f(x + 0.5 * h * k1, at(t + 0.5 * h))
            k3 = f(x + 0.5 * h * k2, at(t + 0.5 * h))
            k4 = f(x + h * k3, at(t + h))
            x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x
