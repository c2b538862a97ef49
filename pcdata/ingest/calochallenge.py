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

import math
import os
import socket
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..clouds import Clouds
from ..errors import ClusterError, IngestError, SourceError
from ..geometry.calo import GEOMETRY_NAMES, CaloGeometry, GeometryName, get_geometry
from ..geometry.voxels import POINT_FEATURES
from ..sources._hdf5 import open_hdf5
from ..sources._inputs import check_distinct
from ..sources.calochallenge import (
    CaloChallengeFile,
    default_block_rows,
    inspect_calochallenge_file,
    read_calochallenge_block,
)
from ..store.format import Feature, SplitSpec, StoreMeta
from ..store.reader import Store, open_store
from ..store.writer import ChunkSpec
from .cluster import dask_client
from .pipeline import run_ingest

__all__ = ["ingest_calochallenge", "calochallenge_template", "CaloChallengeShowers", "CaloChallengeShowersGPU"]


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


# -- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaloChallengeShowers:
    """Validated CaloChallenge files as an ingest source (picklable; files opened inside tasks).

    A task may cover more rows than one read block (a large ``rows_per_fragment``): it then reads
    block after block and concatenates the (much smaller) clouds, so a worker never holds more
    than ``block_rows`` rows of voxels.

    Attributes:
        files: from :func:`~pcdata.sources.calochallenge.inspect_calochallenge_file`.
        geometry: the geometry name.
        block_rows: rows per read (about 64 MiB of float32 voxels).
        threshold: drop hits below this energy (MeV); None keeps every non-zero voxel.
        incident_dtype: dtype every block's ``incident_energy`` is cast to (exactly), so all
            fragments agree even when the files do not.
    """

    files: tuple[CaloChallengeFile, ...]
    geometry: str
    block_rows: int
    threshold: float | None = None
    incident_dtype: str = "float32"

    name = "calochallenge"

    def rows(self) -> list[int]:
        """Showers per file."""
        return [f.n_showers for f in self.files]

    def _blocks(self, start: int, stop: int):
        return [(lo, min(stop, lo + self.block_rows)) for lo in range(start, stop, self.block_rows)]

    def _finish(self, parts: list[Clouds]) -> Clouds:
        clouds = Clouds.concat(parts)
        clouds.fields["incident_energy"] = clouds.fields["incident_energy"].astype(self.incident_dtype, copy=False)
        return clouds

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        """Showers ``start:stop`` of file ``file_index`` as hit clouds, read block by block.

        Raises:
            SourceError: negative or non-finite energies (first bad row quoted), or a read failure.
        """
        f = self.files[file_index]
        return self._finish([read_calochallenge_block(f, lo, hi, threshold=self.threshold)
                             for lo, hi in self._blocks(start, stop)])


def _read_rows(file: CaloChallengeFile, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open_hdf5(file.path) as h:
            return h["incident_energies"][start:stop], h["showers"][start:stop]
    except SourceError:
        raise
    except Exception as err:  # h5py raises OSError/KeyError/ValueError for damaged files
        raise SourceError(f"{file.path}: cannot read showers {start}:{stop} ({type(err).__name__}: {err})") from err


def _first(mask) -> int | None:
    idx = mask.nonzero()
    idx = idx[0] if isinstance(idx, tuple) else idx.reshape(-1)
    return int(idx[0]) if len(idx) else None


@dataclass(frozen=True)
class CaloChallengeShowersGPU(CaloChallengeShowers):
    """The same source, converting on the worker's CUDA GPU with torch.

    The block is read on the host (HDF5 decompression is CPU work), checked and converted on
    the GPU, and the points come back as numpy. ``energy_sum`` is summed on the host with the
    CPU path's own function, so both paths store identical bits.

    Attributes:
        device: the torch device of the conversion (default ``cuda``, the worker's GPU under
            dask-cuda; ``cpu`` runs the same code without a GPU, for tests).
    """

    device: str = "cuda"

    def read(self, file_index: int, start: int, stop: int) -> Clouds:
        """As :meth:`CaloChallengeShowers.read`, converting on the GPU.

        Raises:
            ClusterError: this worker has no CUDA GPU.
            SourceError: as the CPU path, with the same messages.
        """
        import torch

        from ..geometry.voxels_torch import voxels_to_points_torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ClusterError(f"--gpu: the Dask worker on {socket.gethostname()} has no CUDA GPU")
        f = self.files[file_index]
        parts = []
        for lo, hi in self._blocks(start, stop):
            inc, showers = _read_rows(f, lo, hi)
            inc = inc.reshape(len(inc))
            bad = _first(~np.isfinite(inc) | (inc <= 0))
            if bad is not None:
                raise SourceError(f"{f.path}: incident_energies must be finite and positive (row {lo + bad} has {inc[bad]!r})")
            dev = torch.from_numpy(showers).to(self.device)
            bad = _first(~torch.isfinite(dev).all(dim=1))
            if bad is not None:
                raise SourceError(f"{f.path}: showers have non-finite energies (first at row {lo + bad})")
            bad = _first((dev < 0).any(dim=1))
            if bad is not None:
                raise SourceError(f"{f.path}: showers have negative energies (first at row {lo + bad})")
            points, offsets = voxels_to_points_torch(dev, self.geometry, threshold=self.threshold)
            points, offsets = points.cpu().numpy(), offsets.cpu().numpy()
            del dev
            counts = np.diff(offsets)
            rows = np.repeat(np.arange(len(counts)), counts)
            parts.append(Clouds(
                points=points,
                offsets=offsets,
                fields={
                    "incident_energy": inc.astype(np.float32 if inc.dtype == np.float32 else np.float64),
                    "num_points": counts.astype(np.int32),
                    # Same call as voxels_to_clouds: float64 accumulation in point order.
                    "energy_sum": np.bincount(rows, weights=points[:, 3], minlength=len(counts)),
                },
                point_features=POINT_FEATURES,
            ))
        return self._finish(parts)


# -- the pipeline ------------------------------------------------------------------------------


def _incident_dtype(files: Sequence[CaloChallengeFile]) -> str:
    import h5py

    kinds = set()
    for f in files:
        with h5py.File(f.path, "r") as h:
            kinds.add(np.dtype(h["incident_energies"].dtype))
    # float64 holds float32, float16 and integer energies exactly; float32 only itself.
    return "float32" if kinds == {np.dtype(np.float32)} else "float64"


def _worker_has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _check_gpu_workers(scheduler: str) -> None:
    """With an existing scheduler, refuse ``gpu`` before writing unless every worker has CUDA."""
    with dask_client(scheduler=scheduler) as client:
        seen = client.run(_worker_has_cuda)
    without = sorted(w for w, ok in seen.items() if not ok)
    if not seen or without:
        raise ClusterError(
            f"--gpu: the workers of {scheduler} have no CUDA GPU ({', '.join(without) or 'no workers'})"
        )


def ingest_calochallenge(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    geometry: CaloGeometry | GeometryName | str,
    workers: int | None = None,
    scheduler: str | None = None,
    gpu: bool = False,
    threshold: float | None = None,
    rows_per_fragment: int | None = None,
    splits: SplitSpec = SplitSpec(),
    chunks: ChunkSpec = ChunkSpec(),
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> Store:
    """Convert CaloChallenge HDF5 files into a shower store at ``out``.

    Args:
        files: CaloChallenge files (``incident_energies`` [N, 1], ``showers`` [N, n_voxels]) of
            one geometry.
        out: the store directory to create (or to resume, after an interruption).
        geometry: ``ds1-photons``, ``ds1-pions``, ``ds2`` or ``ds3`` (or that :class:`CaloGeometry`).
        workers: LocalCluster worker processes (default: the machine's cores).
        scheduler: address of an existing Dask scheduler instead of a LocalCluster; with
            ``gpu`` its workers must have CUDA GPUs.
        gpu: convert on CUDA GPUs (a dask-cuda LocalCUDACluster, one worker per GPU); the store
            is identical to the CPU one. Default False.
        threshold: drop hits below this energy (MeV); default None keeps every non-zero voxel
            (needed for an export identical to the input).
        rows_per_fragment: showers per fragment (default: one read block, about 64 MiB of voxels:
            ~2600 showers of dataset 2, ~400 of dataset 3). Larger fragments are still read in
            blocks of that size.
        splits: named split fractions and seed (default train/val/test 0.7/0.15/0.15, seed 42).
        chunks: chunking and compression of the fragment arrays.
        overwrite: replace an existing store (only once the new one is complete).
        progress: show a progress bar on stderr.
        command: the command line recorded in the provenance (default: ``sys.argv``).

    Returns:
        The finished store.

    Raises:
        SourceError: an unknown geometry; a file missing, empty, truncated, not HDF5, or breaking
            the layout (voxel count, ``(N,)`` incident energies, lengths); negative or non-finite
            energies. Nothing is left behind.
        ClusterError: ``gpu`` without a CUDA GPU (nothing is written), or no cluster.
        IngestError: a bad ``rows_per_fragment`` or ``threshold``.
    """
    name = geometry.name if isinstance(geometry, CaloGeometry) else geometry
    # Workers look the binning up by name, so only the four shipped geometries can be ingested.
    if name not in GEOMETRY_NAMES or (isinstance(geometry, CaloGeometry) and geometry != get_geometry(name)):
        raise SourceError(f"--geometry: unknown calorimeter geometry {name!r}, expected one of {', '.join(GEOMETRY_NAMES)}")
    geo = get_geometry(name)
    if threshold is not None and not (math.isfinite(threshold) and threshold >= 0):
        raise IngestError(f"--threshold must be a finite energy >= 0 MeV, got {threshold}")
    if not files:
        raise SourceError("no input files given")
    check_distinct(files)
    # Metadata only: every file's layout is checked before a cluster starts or anything is written.
    infos = tuple(inspect_calochallenge_file(p, geo) for p in files)
    block = default_block_rows(geo.n_voxels)
    cls = CaloChallengeShowersGPU if gpu else CaloChallengeShowers
    source = cls(infos, geo.name, block, threshold, _incident_dtype(infos))
    template = calochallenge_template(geo, incident_dtype=source.incident_dtype, threshold=threshold, splits=splits)
    if gpu and scheduler:
        _check_gpu_workers(scheduler)
    # The GPU path stores the same bits, so it is not part of the fingerprint: a build started on
    # CPUs may be finished on GPUs and vice versa.
    options = {"geometry": geo.name, "threshold": threshold, "splits": splits.to_dict(), "chunks": vars(chunks),
               "incident_dtype": source.incident_dtype}
    run_ingest(
        source, out, template,
        rows_per_fragment=rows_per_fragment if rows_per_fragment is not None else block, options=options, workers=workers, scheduler=scheduler,
        gpu=gpu, overwrite=overwrite, chunks=chunks, progress=progress, command=command,
    )
    return open_store(out)
