"""``pcdata ingest ...``: convert input files into a store on Dask."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import handle_errors

app = typer.Typer(help="Convert input files into a point-cloud store (on a Dask cluster).", no_args_is_help=True)

WORKERS = typer.Option(None, "--workers", "-w", help="Worker processes of a local Dask cluster (default: the machine's cores).")
SCHEDULER = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")
ROWS = typer.Option(None, "--rows-per-fragment", help="Clouds per fragment (default: about 32 MB of input each).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing store (only once the new one is complete).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _report(store) -> None:
    typer.echo(f"wrote {store.path}: {store.num_clouds:,} clouds, {store.num_points:,} points, "
               f"{len(store.fragments)} fragments")


@app.command("jetnet")
@handle_errors
def jetnet(
    files: List[Path] = typer.Argument(..., help="JetNet HDF5 files (particle_features, jet_features)."),
    out: Path = typer.Option(..., "--out", "-o", help="The store directory to write."),
    label: Optional[str] = typer.Option(None, "--label", help="Jet class of all files (g, q, t, w, z) (default: from the file names)."),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    rows_per_fragment: Optional[int] = ROWS,
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Ingest JetNet HDF5 files: real particles (mask 1) become clouds in relative coordinates."""
    from pcdata.ingest import ingest_jetnet

    store = ingest_jetnet(files, out, label=label, workers=workers, scheduler=scheduler,
                          rows_per_fragment=rows_per_fragment, overwrite=overwrite, progress=not quiet)
    _report(store)


@app.command("root")
@handle_errors
def root(
    files: List[Path] = typer.Argument(..., help="ROOT files holding the same tree."),
    out: Path = typer.Option(..., "--out", "-o", help="The store directory to write."),
    tree: Optional[str] = typer.Option(None, "--tree", "-t", help="TTree name."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Per-event collection X (reads nX, X_<feature>)."),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated features of the collection, e.g. pt,eta,phi."),
    event_fields: Optional[str] = typer.Option(None, "--event-fields", help="Comma-separated per-event branches kept as cloud fields."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="YAML file with the branch mapping."),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    rows_per_fragment: Optional[int] = ROWS,
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Ingest ROOT trees: per-jet trees (JetClass branches) or per-event collections (NanoAOD style)."""
    from pcdata.ingest import ingest_root

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    store = ingest_root(files, out, tree=tree, collection=collection, features=split(features),
                        event_fields=split(event_fields) or (), mapping=mapping, workers=workers, scheduler=scheduler,
                        rows_per_fragment=rows_per_fragment, overwrite=overwrite, progress=not quiet)
    _report(store)
