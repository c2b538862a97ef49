"""``pcdata download NAME``: fetch a catalogued dataset's files, resumably, and check them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import handle_errors

__all__ = ["download"]


@handle_errors
def download(
    name: str = typer.Argument(..., help="Catalog name, e.g. jetnet:t or calochallenge:ds2 (see `pcdata catalog list`)."),
    dir: Path = typer.Option(Path("."), "--dir", "-d", help="Directory to put the files in (created if needed)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="Mirror to fetch from, as <base-url>/<record>/<file> (default: $PCDATA_MIRROR, else the Zenodo URL in the catalog)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="A public catalog file to look NAME up in instead of the shipped one."),
    retries: int = typer.Option(3, "--retries", min=0, help="Times to resume a broken transfer before giving up; the .part file stays for a re-run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Download a public dataset's files into DIR, checking sizes and MD5s; print each file's path."""
    from pcdata.catalog import download as fetch

    for path in fetch(name, dir=dir, base_url=base_url, catalog=catalog, retries=retries, progress=not quiet):
        typer.echo(str(path))
