"""``pcmodels evaluate``: compare generated jets or showers with real ones and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import fail, handle_errors

__all__ = ["evaluate_cmd"]


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p <= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        fail(f"--classifier-split must be three positive fractions summing to 1 (train,test,validation), got {text!r}")
    return parts  # type: ignore[return-value]


@handle_errors
def evaluate_cmd(
    real: str = typer.Option(..., "--real", "-r", help="Real sample: a store (path, or catalog name or "
                             "name@version) or, for showers, a CaloChallenge HDF5 file."),
    generated: str = typer.Option(..., "--generated", "-g", help="Generated sample: the same kinds as --real."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory (metrics.json, summary.txt, plots)."),
    split: str = typer.Option("test", "--split", help="Split of a real store to compare with (files are used whole)."),
    num: int = typer.Option(5000, "--num", "-n", help="Jets: at most this many from each sample. Showers: at most "
                            "this many generated and twice as many real (each floor half as large as the "
                            "generated sample). 0 = all, which reproduces the official CaloChallenge numbers."),
    seed: int = typer.Option(0, "--seed", help="Seeds the subsets, the real halves, the metrics' draws and the "
                             "classifiers (FPD/KPD of showers keep the official seed 42)."),
    classifier_epochs: Optional[int] = typer.Option(None, "--classifier-epochs", help="Showers: epochs of each "
                                                    "classifier (official 50; default 50 on a GPU, 10 on a CPU)."),
    classifier_split: str = typer.Option("0.6,0.2,0.2", "--classifier-split", help="Showers: train,test,validation "
                                         "fractions of each class for the classifiers."),
    classifier_precision: str = typer.Option("auto", "--classifier-precision", help="Showers: auto (bfloat16 "
                                             "autocast where the hardware has it), float32 or bfloat16."),
    device: str = typer.Option("cpu", "--device", help="Showers: where the classifiers train (cpu, cuda, cuda:1)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the figures."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
) -> None:
    """Score generated clouds against real ones, beside the real-vs-real floor.

    Jets: W1M, W1P, W1EFP, FPD, KPD and KL (stores of jets). Showers (stores of showers or
    CaloChallenge files): the CaloChallenge evaluation, i.e. separation powers of every official
    histogram, FPD/KPD on the high-level features and the low- and high-level classifiers.
    The kind is detected from the inputs.
    """
    # Option checks here, so the one-line message names the flag the user typed.
    if num < 0:
        fail(f"--num must be 0 (all) or positive, got {num}")
    if seed < 0:
        fail(f"--seed must be non-negative, got {seed}")
    from pcmodels.evaluation.shower_samples import is_shower_input

    if not (is_shower_input(real) or is_shower_input(generated)):
        if 0 < num < 4:
            fail(f"--num must be 0 (all) or at least 4 for jets, got {num}")
        from pcmodels.evaluation.jets import evaluate, format_summary

        report = evaluate(real, generated, out, split=split, num=num or None, seed=seed, progress=not quiet)
        typer.echo(format_summary(report))
        typer.echo(f"report: {Path(out) / 'metrics.json'}, plots: {', '.join(report['plots'])}")
        return

    if 0 < num < 5:
        fail(f"--num must be 0 (all) or at least 5 for showers, got {num}")
    if classifier_epochs is not None and classifier_epochs < 1:
        fail(f"--classifier-epochs must be at least 1, got {classifier_epochs}")
    if classifier_precision not in ("auto", "float32", "bfloat16"):
        fail(f"--classifier-precision must be auto, float32 or bfloat16, got {classifier_precision!r}")
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        fail(f"--device: unknown device {device!r} (cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {device}: no CUDA GPU is available here")
    if dev.type not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda[:N], got {device!r}")
    from pcmodels.evaluation.showers import evaluate_showers, format_shower_summary
    from pcmodels.metrics.classifier import ClassifierConfig

    epochs = classifier_epochs or (50 if dev.type == "cuda" else 10)
    config = ClassifierConfig(epochs=epochs, split=_split(classifier_split), seed=seed, device=device,
                              precision=classifier_precision)
    report = evaluate_showers(real, generated, out, split=split, num=num or None, seed=seed, classifier=config,
                              plots=plots, progress=not quiet)
    typer.echo(format_shower_summary(report))
    typer.echo(f"report: {Path(out) / 'metrics.json'}" + (f", plots in {out}" if report["plots"] else ""))
