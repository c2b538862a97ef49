"""One run's score: clouds generated with its weights against a real split, kept in the run folder.

What scores a run depends on the kind of its store, and only this module's table knows it
(:data:`SCORERS`): the jet evaluation for jets, the CaloChallenge evaluation for showers, each
with the metrics a study may optimise and how to read a metric's value and error from a report.

``RUN/evaluations/<split>-n<num>-s<seed>-<digest>/`` holds ``generated.zarr`` and the
evaluation report (``metrics.json``); the name carries every setting (the digest: the real
sample and what the kind's evaluation fixes), so a sweep's trials and ``pcmodels compare`` with
the same real split and seeds read one evaluation instead of two.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import EvaluationError

__all__ = ["Scorer", "SCORERS", "scorer", "scorer_for", "evaluation_dir", "score_run"]


@dataclass(frozen=True)
class Scorer:
    """How runs trained on one kind of store are scored.

    Attributes:
        kind: the store kind (``StoreMetadata.kind``).
        title: the evaluation, in messages (``jet evaluation``).
        clouds: what ``num`` counts, in messages (``jets``).
        metrics: the report's keys a study may optimise, in the comparison table's order.
        direction: the better way for every one of them.
        min_num: the fewest generated clouds the evaluation accepts.
        min_real: the fewest clouds the real split must hold.
        real_per_num: real clouds read per generated one (showers: two, one floor half each).
        settings: what the evaluation fixes beyond split, num and seed, folded into the name of
            the evaluation folder so that another setting is another evaluation.
        evaluate: ``(real, generated, out, *, split, num, seed, device, progress) -> report``.
    """

    kind: str
    title: str
    clouds: str
    metrics: tuple[str, ...]
    direction: str
    min_num: int
    min_real: int
    real_per_num: int
    settings: str
    evaluate: Callable[..., dict]

    def read(self, report: Mapping[str, Any], metric: str) -> tuple[float | None, float | None]:
        """``(value, error)`` of ``metric`` in a report (or its ``floor``): a scalar metric (an
        AUC, a JSD) has no error (None); a value that was not finite is None."""
        entry = report[metric]
        if isinstance(entry, Mapping):
            return _float(entry["value"]), _float(entry.get("error"))
        return _float(entry), None

    def scale(self, report: Mapping[str, Any], metric: str) -> float:
        """The factor a metric's value was multiplied by for display (1 for a scalar)."""
        entry = report[metric]
        return float(entry.get("scale", 1.0)) if isinstance(entry, Mapping) else 1.0


def _float(x: Any) -> float | None:
    return None if x is None or x != x else float(x)  # x != x: NaN


def _jets(real, generated, out, *, split, num, seed, device, progress) -> dict:
    from ..evaluation.jets import evaluate
    from ..metrics.jets import MetricConfig

    # One process for the EFPs: sweeps run inside single-threaded workers.
    return evaluate(real, generated, out, split=split, num=num, seed=seed, progress=progress,
                    config=MetricConfig(efp_jobs=1), plots=False)


#: The shower classifiers of a sweep: 10 epochs (the CLI's CPU default) of a 512-wide network
#: (the official one is 2048 wide, 50 epochs). A sweep ranks trials against each other and a floor
#: computed alike, inside single-threaded workers; ``pcmodels evaluate`` gives the official numbers.
SWEEP_CLASSIFIER = {"epochs": 10, "hidden": 512}


def _showers(real, generated, out, *, split, num, seed, device, progress) -> dict:
    from ..evaluation.showers import evaluate_showers
    from ..metrics.classifier import ClassifierConfig

    config = ClassifierConfig(**SWEEP_CLASSIFIER, seed=seed, device=device)
    return evaluate_showers(real, generated, out, split=split, num=num, seed=seed, classifier=config,
                            plots=False, progress=progress)


#: Every kind a sweep scores: kind -> its :class:`Scorer`.
SCORERS: dict[str, Scorer] = {s.kind: s for s in (
    Scorer(kind="jets", title="jet evaluation", clouds="jets", metrics=("w1m", "w1p", "w1efp", "fpd", "kpd", "kl"),
           direction="minimize", min_num=4, min_real=4, real_per_num=1, settings="", evaluate=_jets),
    # Every shower metric is better lower: an AUC near 0.5 and a JSD near 0 mean the classifier
    # cannot tell the samples apart.
    Scorer(kind="showers", title="shower evaluation", clouds="showers",
           metrics=("auc_low", "auc_high", "jsd_low", "jsd_high", "fpd", "kpd"), direction="minimize", min_num=5,
           min_real=10, real_per_num=2, settings=json.dumps({"classifier": SWEEP_CLASSIFIER}, sort_keys=True),
           evaluate=_showers),
)}


def scorer(kind: str) -> Scorer:
    """The scorer of a store kind.

    Raises:
        EvaluationError: no evaluation scores that kind.
    """
    try:
        return SCORERS[kind]
    except KeyError:
        raise EvaluationError(f"runs on stores of {kind} cannot be scored (sweeps and compare score "
                              f"{', '.join(SCORERS)})") from None


def scorer_for(real: str | os.PathLike) -> Scorer:
    """The scorer of a real sample: a store (its kind) or a CaloChallenge file (showers)."""
    from pcdata import open_store

    from ..evaluation.shower_samples import is_shower_input

    if os.path.isfile(str(real)) and is_shower_input(real):
        return SCORERS["showers"]
    return scorer(open_store(str(real)).kind)


def evaluation_dir(run: str | Path, real: str, *, split: str, num: int, seed: int, settings: str = "") -> Path:
    where = Path(real)
    ident = str(where.resolve()) if where.exists() else real
    # Jets fix nothing more, which keeps their folders' names as they were.
    digest = hashlib.sha256((ident + (f"|{settings}" if settings else "")).encode()).hexdigest()[:8]
    return Path(run) / "evaluations" / f"{split}-n{num}-s{seed}-{digest}"


def score_run(run: str | Path, real: str, *, split: str, num: int, seed: int, kind: str | None = None,
              device: str = "cpu", progress: bool = False) -> dict:
    """The evaluation report of ``run`` (read when it exists, else sampled and evaluated).

    ``num`` clouds are generated with ``seed`` and compared with the real ``split`` by the
    evaluation of ``kind`` (default: the kind of ``real``), without figures."""
    from ..sampling import sample

    s = scorer(kind) if kind is not None else scorer_for(real)
    out = evaluation_dir(run, real, split=split, num=num, seed=seed, settings=s.settings)
    report_path = out / "metrics.json"
    if report_path.exists():
        return json.loads(report_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    generated = out / "generated.zarr"
    sample(run, num, generated, seed=seed, device=device, progress=False)
    return s.evaluate(real, generated, out, split=split, num=num, seed=seed, device=device, progress=progress)
