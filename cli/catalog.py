"""``pcdata catalog ...``: the public datasets pcdata knows and the group's shared catalog of stores.

The shared-catalog commands take ``--catalog DIR`` (default ``$PCDATA_CATALOG``) and ``--json``;
every one is a call into :mod:`pcdata.catalog.shared`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from ._common import fail, handle_errors

if TYPE_CHECKING:
    from rich.table import Table

    from pcdata.catalog import CatalogEntry, PublicCatalog, SharedCatalog

__all__ = ["app", "list_datasets", "init", "add", "show", "remove", "resolve", "verify"]

app = typer.Typer(help="Dataset catalogs: the public datasets pcdata can download, and the shared catalog of "
                       "stores (--catalog DIR or $PCDATA_CATALOG).", no_args_is_help=True)

CATALOG = typer.Option(None, "--catalog", metavar="DIR", help="Shared catalog directory (default: $PCDATA_CATALOG).")
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
REF = typer.Argument(..., metavar="NAME[@VERSION]", help="A registered name, optionally @version (default: the latest).")


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


def _echo_json(doc) -> None:
    typer.echo(json.dumps(doc, indent=1))


def _warn(problems) -> None:
    # Malformed entries are skipped, not fatal: one line each on stderr, naming the file.
    for p in problems:
        typer.echo(f"warning: {p}", err=True)


def _shared(catalog: Optional[Path]) -> "SharedCatalog":
    from pcdata.catalog import open_catalog

    if catalog is not None and catalog.is_file():
        fail(f"--catalog {catalog}: a file; a shared catalog is a directory (a public catalog file goes to --public-catalog)")
    return open_catalog(catalog)


def _public_table(catalog: "PublicCatalog") -> "Table":
    from rich.table import Table

    table = Table(title=f"Public datasets ({catalog.source})", title_justify="left")
    for column in ("name", "kind", "files", "total size", "record"):
        table.add_column(column, justify="right" if column in ("files", "total size") else "left")
    for ds in catalog:
        table.add_row(ds.name, ds.kind, str(len(ds.files)), _size(ds.total_size),
                      ", ".join(str(r) for r in ds.records))
    return table


def _shared_table(root: Path, entries: "list[CatalogEntry]") -> "Table":
    from rich.table import Table

    table = Table(title=f"Shared stores ({root})", title_justify="left")
    for column in ("name", "version", "kind", "clouds", "points", "registered", "path"):
        table.add_column(column, justify="right" if column in ("version", "clouds", "points") else "left")
    for e in entries:
        table.add_row(e.name, str(e.version), e.kind, f"{e.num_clouds:,}", f"{e.num_points:,}",
                      f"{e.registered_by} {e.registered_at}", e.path)
    return table


@app.command("list")
@handle_errors
def list_datasets(
    as_json: bool = JSON,
    catalog: Optional[Path] = CATALOG,
    public_catalog: Optional[Path] = typer.Option(None, "--public-catalog", metavar="FILE",
                                                  help="A public catalog file to read instead of the shipped one."),
) -> None:
    """List the public datasets (files, sizes, Zenodo records) and the stores of the shared catalog."""
    import os

    from pcdata.catalog import CATALOG_ENV, load_public_catalog
    from pcdata.errors import CatalogNotFoundError

    public = load_public_catalog(public_catalog)
    shared, entries = None, []
    if catalog is not None or os.environ.get(CATALOG_ENV):
        shared = _shared(catalog)
        try:
            scan = shared.scan()
        except CatalogNotFoundError as err:
            # The public datasets are still worth listing when the shared catalog is not there yet.
            _warn([str(err)])
        else:
            _warn(scan.problems)
            entries = list(scan.entries)
    if as_json:
        _echo_json({"public": [{**ds.to_dict(), "total_size": ds.total_size} for ds in public],
                    "shared": [e.to_dict() for e in entries]})
        return
    from rich.console import Console

    console = Console()
    console.print(_public_table(public))
    if shared is None:
        console.print(f"No shared catalog (pass --catalog DIR or set {CATALOG_ENV}).")
    else:
        console.print(_shared_table(shared.root, entries))


@app.command("init")
@handle_errors
def init(
    directory: Optional[Path] = typer.Argument(None, metavar="[DIR]", help="Catalog directory (default: $PCDATA_CATALOG)."),
    allowed_root: List[Path] = typer.Option(..., "--allowed-root", help="A directory stores may be registered from (repeatable)."),
    as_json: bool = JSON,
) -> None:
    """Create a shared catalog, or add allowed roots to an existing one."""
    from pcdata.catalog import init_catalog

    cat = init_catalog(directory, list(allowed_root))
    roots = list(cat.config.allowed_roots)
    if as_json:
        _echo_json({"catalog": str(cat.root), "allowed_roots": roots})
    else:
        typer.echo(f"catalog {cat.root}: stores allowed under {', '.join(roots)}")


@app.command("add")
@handle_errors
def add(
    name: str = typer.Argument(..., help="Name to register the store under."),
    store: Path = typer.Argument(..., help="A complete store directory."),
    version: Optional[int] = typer.Option(None, "--version", help="Version to take (default: the next free one)."),
    catalog: Optional[Path] = CATALOG,
    as_json: bool = JSON,
) -> None:
    """Register a complete store as NAME (the next version, or --version N)."""
    entry = _shared(catalog).add(name, store, version=version)
    if as_json:
        _echo_json(entry.to_dict())
    else:
        typer.echo(f"registered {entry.ref}: {entry.path} ({entry.num_clouds:,} clouds, {len(entry.fragments)} fragments)")


@app.command("show")
@handle_errors
def show(ref: str = REF, catalog: Optional[Path] = CATALOG, as_json: bool = JSON) -> None:
    """Show an entry: path, counts, features with statistics, provenance, fragments."""
    entry = _shared(catalog).get(ref)
    if as_json:
        _echo_json(entry.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{entry.ref}[/bold]  {entry.path}")
    console.print(f"kind={entry.kind}  coords={entry.coords}  {entry.num_clouds:,} clouds, {entry.num_points:,} points, "
                  f"{len(entry.fragments)} fragments")
    console.print(f"registered by {entry.registered_by}@{entry.registered_host} on {entry.registered_at}")
    table = Table(title="features", title_justify="left")
    for col in ("name", "of", "unit", "mean", "std", "min", "max"):
        table.add_column(col, justify="right" if col in ("mean", "std", "min", "max") else "left")
    for of, feats in (("point", entry.point_features), ("cloud", entry.cloud_features)):
        for f in feats:
            s = entry.stats.get(f.name)
            values = ("-",) * 4 if s is None else tuple("-" if v is None else f"{v:.6g}" for v in (s.mean, s.std, s.min, s.max))
            table.add_row(f.name, of, f.unit, *values)
    console.print(table)
    from ._render import print_provenance

    print_provenance(console, entry.provenance.to_dict())


@app.command("remove")
@handle_errors
def remove(ref: str = REF, catalog: Optional[Path] = CATALOG, as_json: bool = JSON) -> None:
    """Remove NAME@VERSION, or every version of NAME, from the catalog (the store is not touched)."""
    removed = _shared(catalog).remove(ref)
    if as_json:
        _echo_json({"removed": removed})
    else:
        for r in removed:
            typer.echo(f"removed {r}")


@app.command("resolve")
@handle_errors
def resolve(ref: str = REF, catalog: Optional[Path] = CATALOG, as_json: bool = JSON) -> None:
    """Print the store path a name stands for (checked against the allowed roots now)."""
    entry = _shared(catalog).resolve_entry(ref)
    if as_json:
        _echo_json({"name": entry.name, "version": entry.version, "path": entry.path})
    else:
        typer.echo(entry.path)


@app.command("verify")
@handle_errors
def verify(ref: str = REF, catalog: Optional[Path] = CATALOG, as_json: bool = JSON) -> None:
    """Re-check a store against its entry (fragments, checksums, data); exit 2 naming what differs."""
    report = _shared(catalog).verify(ref)
    ref = report.entry.ref
    if as_json:
        _echo_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(2)
        return
    if report.ok:
        typer.echo(f"ok {ref}: {len(report.entry.fragments)} fragments match the entry and the data")
        return
    for p in report.problems[1:]:
        typer.echo(f"{ref}: {p}", err=True)
    more = f" (and {len(report.problems) - 1} more above)" if len(report.problems) > 1 else ""
    fail(f"{ref} ({report.entry.path}) differs from its entry: {report.problems[0]}{more}")
