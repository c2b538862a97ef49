"""One run's score: jets generated with its weights against a real split, kept in the run folder.

``RUN/evaluations/<split>-n<num>-s<seed>-<store digest>/`` holds ``generated.zarr`` and the
evaluation report (``metrics.json``); the name carries every setting, so a sweep's trials and
``pcmodels compare`` with the same real split and seeds read one evaluation instead of two.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["evaluation_dir", "score_run"]


def evaluation_dir(run: str | Path, real: str, *, split: str, num: int, seed: int) -> Path:
    where = Path(real)
    ident = str(where.resolve()) if where.exists() else real
    digest = hashlib.sha256(ident.encode()).hexdigest()[:8]
    return Path(run) / "evaluations" / f"{split}-n{num}-s{seed}-{digest}"


def score_run(run: str | Path, real: str, *, split: str, num: int, seed: int, device: str = "cpu",
              progress: bool = False) -> dict:
    """The jet evaluation report of ``run`` (read when it exists, else sampled and evaluated).

    ``num`` jets are generated with ``seed`` and compared with at most ``num`` jets of the real
    ``split``; one process for the EFPs, since sweeps run inside single-threaded workers."""
    from ..evaluation.jets import evaluate
    from ..metrics.jets import MetricConfig
    from ..sampling import sample

    out = evaluation_dir(run, real, split=split, num=num, seed=seed)
    report_path = out / "metrics.json"
    if report_path.exists():
        return json.loads(report_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    generated = out / "generated.zarr"
    sample(run, num, generated, seed=seed, device=device, progress=False)
    return evaluate(real, generated, out, split=split, num=num, seed=seed, progress=progress,
                    config=MetricConfig(efp_jobs=1), plots=False)
