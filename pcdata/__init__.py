"""pcdata: particle-physics point clouds in chunked Zarr stores.

Sources (JetNet, CaloChallenge, ROOT) are converted by Dask ingest pipelines into fragment-based
Zarr v3 stores; readers, loaders and exports consume them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pointcloud-platform")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from . import errors
from .clouds import Clouds, Padded
from .store import Store
from .catalog.shared import open_named_store as open_store  # paths and catalog names (the store takes paths only)

__all__ = ["__version__", "errors", "Clouds", "Padded", "Store", "open_store"]
