"""Sampling: ODE solvers and generation of stores from trained runs."""

from .solvers import ODE_SOLVERS, integrate

__all__ = ["ODE_SOLVERS", "integrate"]
