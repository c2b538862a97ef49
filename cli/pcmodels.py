"""The ``pcmodels`` command: train, sample and evaluate generative models from a store."""

from __future__ import annotations

import typer

from ._common import run_app
from .evaluate import evaluate_cmd
from .sweep import compare_cmd, sweep_cmd
from .train import models_cmd, sample_cmd, train_cmd

app = typer.Typer(help="Generative models of point clouds, trained from pcdata stores.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from pcmodels import __version__

        typer.echo(__version__)
        raise typer.Exit()


app.command("train")(train_cmd)
app.command("sample")(sample_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("models")(models_cmd)
app.command("sweep")(sweep_cmd)
app.command("compare")(compare_cmd)


def main() -> None:
    run_app(app, "pcmodels")


if __name__ == "__main__":
    main()
