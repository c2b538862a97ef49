"""Errors raised by pcmodels: children of :class:`pcdata.errors.PcdataError`, so the CLIs treat
them alike (one line on stderr, exit code 2)."""

from __future__ import annotations

from pcdata.errors import PcdataError

__all__ = ["PcmodelsError", "ConfigError", "RunError", "EvaluationError", "TrainingDiverged"]


class PcmodelsError(PcdataError):
    """Base class of the errors pcmodels raises on purpose."""


class ConfigError(PcmodelsError, ValueError):
    """A training configuration or option is invalid."""


class RunError(PcmodelsError, RuntimeError):
    """A run directory is missing, incomplete or belongs to another configuration."""


class EvaluationError(PcmodelsError, ValueError):
    """The stores or options cannot be evaluated (missing features or split, too few jets)."""


class TrainingDiverged(RunError):
    """Training produced non-finite values or a runaway critic; the last good checkpoint is kept."""
