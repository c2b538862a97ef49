"""Evaluation of generated clouds, one module per kind: :mod:`.jets` (jetnet metrics, KL, the
real-vs-real floor, plots); showers join here."""

from .jets import DEFAULT_NUM, METRICS, REFERENCE, evaluate, format_summary

__all__ = ["DEFAULT_NUM", "METRICS", "REFERENCE", "evaluate", "format_summary"]
