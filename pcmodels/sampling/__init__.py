"""Sampling: ODE solvers and generation of stores from trained runs.

``generate`` is loaded on first use: the methods import the solvers from here, and generation
imports the methods.
"""

from .solvers import ODE_SOLVERS, integrate

__all__ = ["ODE_SOLVERS", "integrate", "generate_clouds", "load_run", "sample"]


def __getattr__(name: str):
    if name in ("generate_clouds", "load_run", "sample"):
        from . import generate

        return getattr(generate, name)
    raise AttributeError(name)
