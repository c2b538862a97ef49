"""``pcdata ingest calochallenge``: CaloChallenge HDF5 showers -> a store of hit clouds.

Every shower becomes one cloud with one point per non-zero voxel, ``(layer, alpha_bin, r_bin,
energy)``, in the file's voxel order (:func:`pcdata.geometry.voxels.voxels_to_clouds`); the
conversion is exact, so :func:`pcdata.exports.export_calochallenge` gives the input back bit for
bit. Files are validated up front (metadata only) and then read on Dask workers in row blocks of
about 64 MiB (:func:`~pcdata.sources.calochallenge.default_block_rows`): a dataset 3 file
(50k x 40500 float32, ~8 GB) is streamed, never held in memory whole.

With ``gpu=True`` the work runs on a dask-cuda ``LocalCUDACluster`` (one worker per GPU): each
block is read on the host, moved to the worker's GPU and converted with
:mod:`pcdata.geometry.voxels_torch`; the clouds come back as numpy and are stored exactly as on
the CPU path (same bits, same statistics).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..cluster import CLUSTER_ENV, ClusterSpec
from ..geometry.calo import CaloGeometry, GeometryName, get_geometry
from ..sources.calochallenge import CaloChallengeShowers
from ..store.format import ChunkSpec, Feature, SplitSpec, StoreMeta
from ..store.reader import Store
from .formats import InputFormat, register_format
from .options import IngestOptions
from .pipeline import ingest

__all__ = ["ingest_calochallenge", "calochallenge_template"]


def calochallenge_template(
    geometry: CaloGeometry | GeometryName | str,
    *,
    incident_dtype: str = "float32",
    threshold: float | None = None,
    splits: SplitSpec = SplitSpec(),
) -> StoreMeta:
    """Metadata of a shower store (before fragments and statistics are known).

    Args:
        geometry: the calorimeter binning the showers were voxelised in.
        incident_dtype: dtype of the ``incident_energy`` field: ``float32`` when every input file
            stores float32 energies, else ``float64`` (which holds any of them exactly).
        threshold: the hit threshold applied at ingest (MeV), recorded in ``attrs``.
        splits: named split fractions and seed.
    """
    geo = get_geometry(geometry)
    return StoreMeta(
        kind="showers",
        coords="cylindrical-cells",
        point_features=(
            Feature("layer", "", "float32", "calorimeter layer id (whole number)"),
            Feature("alpha_bin", "", "float32", "angle bin in the layer (whole number; bins of linspace(-pi, pi, n_alpha + 1))"),
            Feature("r_bin", "", "float32", "radial bin in the layer (whole number; edges from the geometry)"),
            Feature("energy", "MeV", "float32", "energy deposited in the voxel"),
        ),
        cloud_features=(
            Feature("incident_energy", "MeV", incident_dtype, "energy of the incident particle"),
            Feature("num_points", "", "int32", "number of hits (non-zero voxels kept)"),
            Feature("energy_sum", "MeV", "float64", "sum of the hits' energies"),
        ),
        splits=splits,
        attrs={
            "source_layout": "calochallenge-hdf5",
            "geometry": geo.name,
            "particle": geo.particle,
            "n_voxels": geo.n_voxels,
            "threshold_mev": threshold,
        },
    )


def _open(paths: Sequence[str | os.PathLike], *, geometry: CaloGeometry | GeometryName | str,
          threshold: float | None = None, gpu: bool = False) -> CaloChallengeShowers:
    return CaloChallengeShowers.open(paths, geometry, threshold=threshold, gpu=gpu)


CALOCHALLENGE = register_format(InputFormat(
    name="calochallenge",
    open=_open,
    template=lambda source, splits: calochallenge_template(source.geometry, incident_dtype=source.incident_dtype,
                                                           threshold=source.threshold, splits=splits),
    # One read block (about 64 MiB of voxels) per fragment.
    rows_per_fragment=lambda source: source.block_rows,
    chunks=ChunkSpec(),
    # The GPU path stores the same bits, so it is not part of the identity: a build started on
    # CPUs may be finished on GPUs and vice versa.
    identity=lambda source, params: {"geometry": source.geometry, "threshold": source.threshold,
                                     "incident_dtype": source.incident_dtype},
))


def ingest_calochallenge(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    geometry: CaloGeometry | GeometryName | str,
    threshold: float | None = None,
    gpu: bool = False,
    options: IngestOptions = IngestOptions(),
    cluster: Any = None,
) -> Store:
    """Convert CaloChallenge HDF5 files into a shower store at ``out``.

    Args:
        files: CaloChallenge files (``incident_energies`` [N, 1], ``showers`` [N, n_voxels]) of
            one geometry.
        out: the store directory to create (or to resume, after an interruption).
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2`` or ``ds3`` (or that :class:`CaloGeometry`).
        threshold: drop hits below this energy (MeV); default None keeps every non-zero voxel
            (needed for an export identical to the input).
        gpu: convert on CUDA GPUs; the store is identical to the CPU one. Without a ``cluster``
            (and no ``PCDATA_CLUSTER``) a dask-cuda LocalCUDACluster starts, one worker per GPU;
            a cluster given must have CUDA on every worker. Default False.
        options: as for :func:`pcdata.ingest.ingest_jetnet`; the default fragment is one read
            block, about 64 MiB of voxels (~2600 showers of dataset 2, ~400 of dataset 3), and
            larger fragments are still read in blocks of that size; chunks default to lz4.
        cluster: where the work runs (see :func:`pcdata.ingest.ingest`).

    Returns:
        The finished store.

    Raises:
        SourceError: an unknown geometry, a bad threshold; a file missing, empty, truncated, not
            HDF5, or breaking the layout (voxel count, ``(N,)`` incident energies, lengths);
            negative or non-finite energies. Nothing is left behind.
        ClusterError: ``gpu`` without a CUDA GPU (nothing is written), or no cluster.
    """
    if gpu and cluster is None and not os.environ.get(CLUSTER_ENV):
        cluster = ClusterSpec(kind="cuda")
    return ingest("calochallenge", files, out, options=options, cluster=cluster, geometry=geometry,
                  threshold=threshold, gpu=gpu)
