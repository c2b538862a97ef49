"""``pcdata catalog ...``: the datasets pcdata knows (the shipped public catalog)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ._common import handle_errors

if TYPE_CHECKING:
    from rich.table import Table

    from pcdata.catalog import PublicCatalog

__all__ = ["app", "list_datasets"]

app = typer.Typer(help="Dataset catalogs: the public datasets pcdata can download.", no_args_is_help=True)


def _size(n: int | None) -> str:
    """Bytes for people (decimal units, as Zenodo shows them); unknown sizes say so."""
    if n is None:
        return "not published"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _public_table(catalog: "PublicCatalog") -> "Table":
    from rich.table import Table

    table = Table(title=f"Public datasets ({catalog.source})", title_justify="left")
    for column in ("name", "kind", "files", "total size", "record"):
        table.add_column(column, justify="right" if column in ("files", "total size") else "left")
    for ds in catalog:
        table.add_row(ds.name, ds.kind, str(len(ds.files)), _size(ds.total_size),
                      ", ".join(str(r) for r in ds.records))
    return table


@app.command("list")
@handle_errors
def list_datasets(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="A public catalog file to read instead of the shipped one."),
) -> None:
    """List the datasets in the catalogs, with their files, sizes and Zenodo records."""
    from pcdata.catalog import load_public_catalog

    public = load_public_catalog(catalog)
    # Keyed by catalog so that a later "shared" catalog (stores on a cluster) sits beside "public".
    if as_json:
        doc = {"public": [{**ds.to_dict(), "total_size": ds.total_size} for ds in public]}
        typer.echo(json.dumps(doc, indent=1))
        return
    from rich.console import Console

    Console().print(_public_table(public))
