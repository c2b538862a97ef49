"""The ``pcdata`` command: ingest, inspect, export, generate."""

from __future__ import annotations

import typer

from . import generate

app = typer.Typer(
    help="Point-cloud data platform: convert JetNet, CaloChallenge and ROOT files to Zarr point-cloud stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(generate.app, name="generate")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
