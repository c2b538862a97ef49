"""Sweeps: a study of many trainings described once (:mod:`.study`), run as Dask tasks with
Optuna's samplers and pruners (:mod:`.runner`, :mod:`.trial`), each trial a resumable run folder
scored by the evaluation of its store's kind, jets or showers (:mod:`.scoring`), and every run
compared in one table and figure (:mod:`.compare`)."""

from .compare import compare
from .runner import StudyResult, run_study, study_client
from .study import StudySpec, load_study

__all__ = ["StudySpec", "load_study", "run_study", "StudyResult", "study_client", "compare"]
