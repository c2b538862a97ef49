"""Evaluation of generated clouds, one module per kind: :mod:`.jets` (jetnet metrics, KL, the
real-vs-real floor, plots) and :mod:`.showers` (the CaloChallenge evaluation: separation powers,
FPD/KPD, classifiers, the floor, plots), with :mod:`.shower_samples` reading stores or files."""

from .jets import DEFAULT_NUM, METRICS, REFERENCE, evaluate, format_summary
from .shower_samples import is_shower_input, open_showers
from .showers import evaluate_showers, format_shower_summary

__all__ = ["DEFAULT_NUM", "METRICS", "REFERENCE", "evaluate", "format_summary", "evaluate_showers",
           "format_shower_summary", "is_shower_input", "open_showers"]
