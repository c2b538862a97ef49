"""Dataset catalogs: the public datasets pcdata knows, and fetching their files.

``load_public_catalog()`` reads the shipped ``catalogs/public.yaml`` (JetNet and CaloChallenge on
Zenodo: files, records, sizes, MD5s, layout, the ingest command); ``download(name)`` fetches a
dataset's files resumably and checks them.

The shared catalog (:mod:`.shared`) is a directory on a cluster file system where a group
registers its stores as ``name@version``; ``resolve_store("top30@2")`` gives the store path and
:func:`~pcdata.store.open_store` accepts such names wherever it takes a path.
"""

from .download import MIRROR_ENV, download, file_url, resolve_base_url
from .entry import CatalogConfig, CatalogEntry, EntryFragment, parse_ref
from .public import (
    GEOMETRIES,
    PublicCatalog,
    PublicDataset,
    PublicFile,
    default_catalog_path,
    get_dataset,
    load_public_catalog,
)
from .shared import (
    CATALOG_ENV,
    CatalogScan,
    SharedCatalog,
    VerifyReport,
    init_catalog,
    open_catalog,
    resolve_store,
)

__all__ = [
    "CATALOG_ENV",
    "CatalogConfig",
    "CatalogEntry",
    "CatalogScan",
    "EntryFragment",
    "GEOMETRIES",
    "MIRROR_ENV",
    "PublicCatalog",
    "PublicDataset",
    "PublicFile",
    "SharedCatalog",
    "VerifyReport",
    "default_catalog_path",
    "download",
    "file_url",
    "get_dataset",
    "init_catalog",
    "load_public_catalog",
    "open_catalog",
    "parse_ref",
    "resolve_base_url",
    "resolve_store",
]
