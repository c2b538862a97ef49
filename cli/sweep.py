"""``pcmodels sweep`` (a study of many trainings on a Dask cluster) and ``pcmodels compare``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import fail, handle_errors

__all__ = ["sweep_cmd", "compare_cmd"]


@handle_errors
def sweep_cmd(
    study: Path = typer.Argument(..., help="The study file (YAML: store, model, config, space, metric, budget, "
                                 "pruner, ...; see the README)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Study folder (default: beside the study file, "
                                       "named after the study); an existing one of the same study continues."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes of a local cluster "
                                          "(replaces the study's cluster.workers)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler "
                                            "(replaces the study's cluster)."),
    cluster: Optional[Path] = typer.Option(None, "--cluster", metavar="FILE.yaml", help="A cluster description "
                                           "(as pcdata ingest --cluster; replaces the study's cluster)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per trial."),
) -> None:
    """Run a study: trials as Dask tasks (Optuna's sampler and pruner, its state in STUDY/optuna.db or the
    study's storage), each trial a resumable run folder scored by the evaluation of its store's kind (jets
    or showers). Killed and run again, it continues."""
    from dataclasses import replace

    from pcmodels.sweep import load_study, run_study

    from pcdata.cluster import load_cluster
    from pcmodels.sweep.study import cluster_description

    given = [flag for flag, value in (("--workers", workers), ("--scheduler", scheduler), ("--cluster", cluster))
             if value is not None]
    if len(given) > 1:
        fail(f"{given[0]} and {given[1]}: give one of --workers, --scheduler and --cluster")
    spec = load_study(study)
    if scheduler is not None:
        spec = replace(spec, cluster=cluster_description({"scheduler": scheduler}))
    elif workers is not None:
        spec = replace(spec, cluster=cluster_description({"workers": workers}))
    elif cluster is not None:
        spec = replace(spec, cluster=load_cluster(cluster).to_dict())
    result = run_study(spec, out, progress=not quiet)
    states = {}
    for t in result.trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    best = result.best
    typer.echo(f"study {result.path}: {len(result.trials)} trials ({', '.join(f'{n} {s}' for s, n in states.items())}) "
               f"in {result.seconds:.0f} s; "
               + (f"best trial {best['number']}: {spec.metric} {best['value']:.4g}" if best else "no trial completed"))


@handle_errors
def compare_cmd(
    sources: List[Path] = typer.Argument(..., help="Run folders and/or study folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: compare.md/.csv/.json and compare.pdf/.png."),
    real: Optional[str] = typer.Option(None, "--real", "-r", help="Real store to compare with (default: the "
                                       "first study's store, or the runs' common store)."),
    split: Optional[str] = typer.Option(None, "--split", help="Real split (default: the first study's, else test)."),
    num: Optional[int] = typer.Option(None, "--num", "-n", help="Clouds generated, and real ones (showers: twice "
                                      "as many) (default: the first study's, else 2000)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sampling and the evaluation (default: the "
                                       "first study's, else 0)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric to rank by (default: the first study's, "
                                         "else w1m for jets, auc_low for showers)."),
    evaluate_pruned: bool = typer.Option(False, "--evaluate-pruned", help="Also score the pruned trials (at the "
                                         "step they stopped; by default listed with their last validation)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Score every run (every trial of a study) on the same real split with the same seeds; one table
    beside the real-vs-real floor, the best per model, the effect of each hyperparameter, one figure."""
    from pcmodels.sweep import compare

    if num is not None and num < 4:
        fail(f"--num must be at least 4, got {num}")
    if seed is not None and seed < 0:
        fail(f"--seed must be non-negative, got {seed}")
    result = compare(sources, out, real=real, split=split, num=num, seed=seed, metric=metric,
                     evaluate_pruned=evaluate_pruned, progress=not quiet)
    s = result["settings"]
    top = next((e for e in result["runs"] if e["rank"] == 1), None)
    typer.echo(f"compared {len(result['runs'])} runs on {s['num']} {s['clouds']} of split {s['split']}; "
               + (f"best: {top['label']} {s['metric']} {top['metrics'][s['metric']]['value']:.4g}; " if top else "")
               + f"wrote {Path(out) / 'compare.md'}, .csv, .json, .pdf, .png")
