"""``--register NAME [--catalog DIR]`` for the ingest commands: register the store once it is complete.

Usage in a command::

    register: Optional[str] = REGISTER,
    catalog: Optional[Path] = CATALOG,
    ...
    check_registration(register, catalog, out)   # before the ingest: fail fast
    store = ingest_...(...)
    register_store(store.path, register, catalog) # only reached when the ingest succeeded
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import fail

__all__ = ["REGISTER", "CATALOG", "check_registration", "register_store"]

REGISTER = typer.Option(None, "--register", metavar="NAME",
                        help="Once the store is complete, register it in the shared catalog as NAME (next version).")
CATALOG = typer.Option(None, "--catalog", metavar="DIR", help="Shared catalog for --register (default: $PCDATA_CATALOG).")


def check_registration(name: Optional[str], catalog: Optional[Path], out: Path) -> None:
    """Refuse a registration that cannot succeed before any work is done: a malformed name, no
    catalog given or set, or an output path outside the catalog's allowed roots."""
    if name is None:
        if catalog is not None:
            fail("--catalog is only used with --register NAME")
        return
    from pcdata.catalog import open_catalog

    open_catalog(catalog).check_add(name, out)


def register_store(path: Path, name: Optional[str], catalog: Optional[Path]) -> None:
    """Register the complete store at ``path`` as ``name`` (nothing when ``name`` is None)."""
    if name is None:
        return
    from pcdata.catalog import open_catalog

    shared = open_catalog(catalog)
    entry = shared.add(name, path)
    typer.echo(f"registered {entry.ref} in catalog {shared.root}")
