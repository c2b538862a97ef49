"""The point-cloud store, format version 1: spec (:mod:`.format`), writer, reader. Layout in README.md."""

from .format import FORMAT_NAME, FORMAT_VERSION, Feature, FeatureStats, FragmentInfo, Provenance, SourceFile, SplitSpec, StoreMeta
from .reader import Store, open_store
from .writer import ChunkSpec, StoreBuilder, prepare_store, write_fragment, write_store

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Feature",
    "FeatureStats",
    "FragmentInfo",
    "Provenance",
    "SourceFile",
    "SplitSpec",
    "StoreMeta",
    "Store",
    "open_store",
    "ChunkSpec",
    "StoreBuilder",
    "prepare_store",
    "write_fragment",
    "write_store",
]
