"""Streaming loaders: shuffled, padded torch batches from a point-cloud store.

:class:`PointCloudLoader` is the entry point; :mod:`.order` defines the global order of an epoch
and each rank's and worker's share, :mod:`.window` reads a worker's batches, :mod:`.transforms`
holds the invertible normalisations, :mod:`.dlpack` hands batches to other frameworks and
:mod:`.world` detects rank and worker.
"""

from .dlpack import to_dlpack, to_jax, to_numpy
from .loader import PointCloudLoader, WorkerOptions
from .order import EpochPlan, ShuffleOptions
from .shower_transforms import BoxCox, CDFDequantize, EnergyFraction, Logit, ShowerConditions
from .transforms import Compose, Dequantize, Log, MinMax, SelectFields, Standardize, Transform, transform_from_dict
from .world import World, detect_ranks, detect_worker

__all__ = [
    "PointCloudLoader",
    "WorkerOptions",
    "ShuffleOptions",
    "EpochPlan",
    "Transform",
    "Compose",
    "Standardize",
    "MinMax",
    "Log",
    "Dequantize",
    "SelectFields",
    "Logit",
    "BoxCox",
    "CDFDequantize",
    "EnergyFraction",
    "ShowerConditions",
    "transform_from_dict",
    "to_dlpack",
    "to_numpy",
    "to_jax",
    "World",
    "detect_ranks",
    "detect_worker",
]
