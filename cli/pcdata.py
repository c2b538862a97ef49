"""The ``pcdata`` command: ingest, inspect, export, generate."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import catalog, download, generate, ingest
from ._common import handle_errors, run_app

app = typer.Typer(
    help="Point-cloud data platform: convert JetNet, CaloChallenge and ROOT files to Zarr point-cloud stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ingest.app, name="ingest")
app.add_typer(generate.app, name="generate")
app.add_typer(catalog.app, name="catalog")
app.command("download")(download.download)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the Dask workers' logs (errors with their tracebacks)."),
) -> None:
    if version:
        from pcdata import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if verbose:
        import os

        os.environ["PCDATA_VERBOSE"] = "1"


@app.command()
@handle_errors
def inspect(
    store: str = typer.Argument(..., help="The store directory, or its http(s):// URL."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise a store: kind, counts, features with units and statistics, splits, provenance."""
    from pcdata import open_store

    info = open_store(store).describe()
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    from ._render import render_store_summary

    render_store_summary(info)


@app.command()
@handle_errors
def verify(
    store: str = typer.Argument(..., help="The store directory (or a catalog name, or an http(s):// URL)."),
) -> None:
    """Re-read every fragment and compare it with its committed checksum; exit 1 on a mismatch."""
    from pcdata import open_store

    s = open_store(store)
    problems = s.verify()
    for line in problems:
        typer.echo(f"{s.path}: {line}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"ok {s.path}: {s.num_fragments} fragments, {s.num_clouds:,} clouds match their checksums")


@app.command()
@handle_errors
def migrate(
    source: Path = typer.Argument(..., help="The store to convert (format 1 or 2); left as it is."),
    out: Path = typer.Argument(..., help="Where to write the format 2 store."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store at OUT."),
) -> None:
    """Rewrite a store in the current format (format 1 stores open read-only)."""
    from pcdata.store.migrate import migrate_store

    meta = migrate_store(source, out, overwrite=overwrite)
    typer.echo(f"wrote {out}: {meta.num_fragments} fragments, {meta.num_clouds:,} clouds, format {meta.version}")


class ExportFormat(str, Enum):
    jetnet_hdf5 = "jetnet-hdf5"
    calochallenge_hdf5 = "calochallenge-hdf5"
    parquet = "parquet"
    arrow = "arrow"


@app.command()
@handle_errors
def export(
    store: str = typer.Argument(..., help="The store directory, or its http(s):// URL."),
    fmt: ExportFormat = typer.Option(..., "--format", "-f", help="Output layout."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file."),
    num_particles: Optional[int] = typer.Option(None, "--num-particles", "-P", help="jetnet-hdf5: particles per jet (default: the source's P)."),
    split: Optional[str] = typer.Option(None, "--split", help="Export only this split (train, val, test)."),
    geometry: Optional[str] = typer.Option(None, "--geometry", help="calochallenge-hdf5: ds1-photons, ds1-pions, ds2 or ds3 (default: the store's)."),
) -> None:
    """Write a store out in another layout (so ingest then export gives the input back)."""
    from pcdata.exports import export_arrow, export_calochallenge, export_jetnet

    if fmt is ExportFormat.calochallenge_hdf5:
        path = export_calochallenge(store, out, geometry=geometry, split=split)
    elif fmt in (ExportFormat.parquet, ExportFormat.arrow):
        path = export_arrow(store, out, format=fmt.value, split=split)
    else:
        path = export_jetnet(store, out, num_particles=num_particles, split=split)
    typer.echo(f"wrote {path}")


def main() -> None:
    run_app(app, "pcdata")


if __name__ == "__main__":
    main()
