"""Dataset catalogs: the public datasets pcdata knows, and fetching their files.

``load_public_catalog()`` reads the shipped ``catalogs/public.yaml`` (JetNet and CaloChallenge on
Zenodo: files, records, sizes, MD5s, layout, the ingest command); ``download(name)`` fetches a
dataset's files resumably and checks them.
"""

from .download import MIRROR_ENV, download, file_url, resolve_base_url
from .public import (
    GEOMETRIES,
    PublicCatalog,
    PublicDataset,
    PublicFile,
    default_catalog_path,
    get_dataset,
    load_public_catalog,
)

__all__ = [
    "GEOMETRIES",
    "MIRROR_ENV",
    "PublicCatalog",
    "PublicDataset",
    "PublicFile",
    "default_catalog_path",
    "download",
    "file_url",
    "get_dataset",
    "load_public_catalog",
    "resolve_base_url",
]
