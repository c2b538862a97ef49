"""``pcdata ingest ...``: convert input files into a store on Dask."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import fail, handle_errors
from ._register import CATALOG, REGISTER, check_registration, register_store

app = typer.Typer(help="Convert input files into a point-cloud store (on a Dask cluster).", no_args_is_help=True)

WORKERS = typer.Option(None, "--workers", "-w", help="Worker processes of a local Dask cluster (default: the machine's cores).")
SCHEDULER = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")
SCHEDULER_FILE = typer.Option(None, "--scheduler-file", help="The JSON file of an existing Dask scheduler (dask scheduler --scheduler-file).")
CLUSTER = typer.Option(None, "--cluster", metavar="FILE.yaml",
                       help="Cluster description: local, scheduler, cuda, or a batch system (slurm, pbs, htcondor, lsf, "
                            "sge) with cores, memory, walltime, queue, job_extra, workers or adaptive (default: "
                            "$PCDATA_CLUSTER, else a local cluster).")
ROWS = typer.Option(None, "--rows-per-fragment", help="Clouds per fragment (default: about 16 MB of input each).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing store (only once the new one is complete).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _compression(default: str):
    return typer.Option(
        default, "--compression", metavar="{none,lz4,zstd,...}",
        help="none: raw chunks, which loaders map from the page cache (the fastest); or a Blosc compressor "
             "(lz4, zstd, lz4hc, blosclz, zlib), decoded every epoch. Jets barely compress (lz4: 0.93 of raw), "
             "showers do (0.64).")


def _chunks(compression: str):
    """The store's chunk layout; a wrong compressor is one line and exit 2, like other input errors."""
    from pcdata.store import ChunkSpec

    try:
        return ChunkSpec(cname=compression)
    except ValueError as err:
        fail(f"--compression: {err}")


def _cluster(workers: Optional[int], scheduler: Optional[str], scheduler_file: Optional[Path], cluster: Optional[Path]):
    """The one way the user named to find workers (None: $PCDATA_CLUSTER or a local cluster)."""
    from pcdata.cluster import ClusterSpec, load_cluster

    given = [flag for flag, value in (("--workers", workers), ("--scheduler", scheduler),
                                      ("--scheduler-file", scheduler_file), ("--cluster", cluster)) if value is not None]
    if len(given) > 1:
        fail(f"{given[0]} and {given[1]}: give one of --workers, --scheduler, --scheduler-file and --cluster")
    if workers is not None:
        return ClusterSpec(workers=workers)
    if scheduler is not None:
        return ClusterSpec(kind="scheduler", address=scheduler)
    if scheduler_file is not None:
        return ClusterSpec(kind="scheduler", scheduler_file=str(scheduler_file))
    return load_cluster(cluster) if cluster is not None else None


def _options(rows_per_fragment: Optional[int], compression: str, overwrite: bool, quiet: bool):
    from pcdata.ingest import IngestOptions

    return IngestOptions(rows_per_fragment=rows_per_fragment, chunks=_chunks(compression), overwrite=overwrite,
                         progress=not quiet)


def _report(store) -> None:
    typer.echo(f"wrote {store.path}: {store.num_clouds:,} clouds, {store.num_points:,} points, "
               f"{len(store.fragments)} fragments")


@app.command("jetnet")
@handle_errors
def jetnet(
    files: List[str] = typer.Argument(..., help="JetNet HDF5 files (particle_features, jet_features), or http(s):// URLs."),
    out: Path = typer.Option(..., "--out", "-o", help="The store directory to write."),
    label: Optional[str] = typer.Option(None, "--label", help="Jet class of all files: g, q, t, w, z (or gluon, quark, top). Default: each file's jet_class attribute (written by pcdata generate jets), else its name (t150.hdf5). A label that disagrees with the attribute is an error."),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    scheduler_file: Optional[Path] = SCHEDULER_FILE,
    cluster: Optional[Path] = CLUSTER,
    rows_per_fragment: Optional[int] = ROWS,
    compression: str = _compression("none"),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    register: Optional[str] = REGISTER,
    catalog: Optional[Path] = CATALOG,
) -> None:
    """Ingest JetNet HDF5 files: real particles (mask 1) become clouds in relative coordinates."""
    from pcdata.ingest import ingest_jetnet

    check_registration(register, catalog, out)
    store = ingest_jetnet(files, out, label=label, options=_options(rows_per_fragment, compression, overwrite, quiet),
                          cluster=_cluster(workers, scheduler, scheduler_file, cluster))
    _report(store)
    register_store(store.path, register, catalog)


@app.command("root")
@handle_errors
def root(
    files: List[str] = typer.Argument(..., help="ROOT files holding the same tree, or http(s):// and root:// (XRootD) URLs."),
    out: Path = typer.Option(..., "--out", "-o", help="The store directory to write."),
    tree: Optional[str] = typer.Option(None, "--tree", "-t", help="TTree or RNTuple name."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Per-event collection X (reads nX, X_<feature>)."),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated features of the collection, e.g. pt,eta,phi."),
    event_fields: Optional[str] = typer.Option(None, "--event-fields", help="Comma-separated per-event branches kept as cloud fields."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="YAML file with the branch mapping."),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    scheduler_file: Optional[Path] = SCHEDULER_FILE,
    cluster: Optional[Path] = CLUSTER,
    rows_per_fragment: Optional[int] = ROWS,
    compression: str = _compression("none"),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    register: Optional[str] = REGISTER,
    catalog: Optional[Path] = CATALOG,
) -> None:
    """Ingest ROOT trees: per-jet trees (JetClass branches) or per-event collections (NanoAOD style)."""
    from pcdata.ingest import ingest_root

    check_registration(register, catalog, out)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    store = ingest_root(files, out, tree=tree, collection=collection, features=split(features),
                        event_fields=split(event_fields) or (), mapping=mapping,
                        options=_options(rows_per_fragment, compression, overwrite, quiet),
                        cluster=_cluster(workers, scheduler, scheduler_file, cluster))
    _report(store)
    register_store(store.path, register, catalog)


@app.command("calochallenge")
@handle_errors
def calochallenge(
    files: List[str] = typer.Argument(..., help="CaloChallenge HDF5 files (incident_energies [N, 1], showers [N, n_voxels]), or http(s):// URLs."),
    geometry: str = typer.Option(..., "--geometry", "-g", metavar="{ds1-photons,ds1-pions,ds2,ds3}",
                                 help="Calorimeter binning of the files: ds1-photons, ds1-pions, ds2 or ds3."),
    out: Path = typer.Option(..., "--out", "-o", help="The store directory to write."),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    scheduler_file: Optional[Path] = SCHEDULER_FILE,
    cluster: Optional[Path] = CLUSTER,
    gpu: bool = typer.Option(False, "--gpu", help="Convert on CUDA GPUs (dask-cuda LocalCUDACluster, torch); same store as on CPUs."),
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="MEV", help="Drop hits below this energy in MeV (default: keep every non-zero voxel)."),
    rows_per_fragment: Optional[int] = typer.Option(None, "--rows-per-fragment", help="Showers per fragment (default: about 64 MiB of voxels each)."),
    compression: str = _compression("lz4"),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    register: Optional[str] = REGISTER,
    catalog: Optional[Path] = CATALOG,
) -> None:
    """Ingest CaloChallenge showers: each non-zero voxel becomes a hit (layer, alpha_bin, r_bin, energy)."""
    from pcdata.ingest import ingest_calochallenge

    # A plain string checked by the library, not a click Choice: a wrong name is one line on
    # stderr and exit 2 like every other input error.
    check_registration(register, catalog, out)
    store = ingest_calochallenge(files, out, geometry=geometry, threshold=threshold, gpu=gpu,
                                 options=_options(rows_per_fragment, compression, overwrite, quiet),
                                 cluster=_cluster(workers, scheduler, scheduler_file, cluster))
    _report(store)
    register_store(store.path, register, catalog)
