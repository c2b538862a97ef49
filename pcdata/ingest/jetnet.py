"""``pcdata ingest jetnet``: JetNet HDF5 files -> a jet store in relative hadronic coordinates."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..sources.jetnet import JET_TYPES, JetNetSource
from ..store.format import Feature, SplitSpec, StoreMeta
from ..store.reader import Store
from ..store.writer import JET_CHUNKS
from .formats import InputFormat, register_format
from .options import IngestOptions
from .pipeline import ingest

__all__ = ["ingest_jetnet", "jetnet_template", "default_rows_per_fragment"]

#: Input bytes of particle_features per fragment when no size is given. Each fragment costs a fixed
#: ~40 ms (its Zarr arrays, a metadata commit); 16 MB measured best on 2 cores for a JetNet150 file
#: (25 fragments). It does not depend on the number of workers, so the store is the same however
#: many there are.
TARGET_FRAGMENT_BYTES = 16 << 20


def default_rows_per_fragment(num_particles: int) -> int:
    return max(1024, TARGET_FRAGMENT_BYTES // (num_particles * 4 * 4))


def jetnet_template(num_particles: int, splits: SplitSpec = SplitSpec()) -> StoreMeta:
    """Metadata of a JetNet jet store (before fragments and statistics are known)."""
    return StoreMeta(
        kind="jets",
        coords="relative-hadronic",
        point_features=(
            Feature("etarel", "", "float32", "eta - eta_jet"),
            Feature("phirel", "rad", "float32", "phi - phi_jet wrapped into [-pi, pi)"),
            Feature("ptrel", "", "float32", "pt / pt_jet"),
        ),
        cloud_features=(
            Feature("pt", "GeV", "float32", "jet transverse momentum"),
            Feature("eta", "", "float32", "jet pseudorapidity"),
            Feature("mass", "GeV", "float32", "jet mass"),
            Feature("num_particles", "", "int32", "constituents of the jet before truncation to P"),
            Feature("label", "", "int32", "jet class index into " + " ".join(JET_TYPES)),
        ),
        splits=splits,
        attrs={"source_layout": "jetnet-hdf5", "num_particles": num_particles, "labels": list(JET_TYPES)},
    )


def _open(paths: Sequence[str | os.PathLike], *, label: str | int | None = None) -> JetNetSource:
    return JetNetSource.open(paths, label=label)


JETNET = register_format(InputFormat(
    name="jetnet",
    open=_open,
    template=lambda source, splits: jetnet_template(source.num_particles, splits),
    rows_per_fragment=lambda source: default_rows_per_fragment(source.num_particles),
    chunks=JET_CHUNKS,
    identity=lambda source, params: {"label": params.get("label")},
))


def ingest_jetnet(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    label: str | int | None = None,
    options: IngestOptions = IngestOptions(),
    cluster: Any = None,
) -> Store:
    """Convert JetNet HDF5 files into a store at ``out`` (:func:`pcdata.ingest.ingest` ``("jetnet", ...)``).

    Args:
        files: JetNet files (``particle_features`` [N, P, 4], ``jet_features`` [N, 4]).
        out: the store directory to create (or to resume, after an interruption).
        label: the jet class of every file (g, q, t, w, z, gluon, quark, top or 0-4); default: each
            file's jet_class attribute, else its name. One that disagrees with the attribute is an error.
        options: fragment size (default about 16 MB of input each), splits, chunks (default raw,
            see ``JET_CHUNKS``), overwrite, progress: :class:`~pcdata.ingest.IngestOptions`.
        cluster: where the work runs (see :func:`pcdata.ingest.ingest`).

    Raises:
        SourceError: a file is missing, not HDF5, truncated, or breaks the layout; nothing is left.
    """
    return ingest("jetnet", files, out, options=options, cluster=cluster, label=label)
