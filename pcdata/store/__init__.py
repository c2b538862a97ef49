"""The point-cloud store, format version 2 (format 1 read-only): spec (:mod:`.format`), root and
manifest I/O (:mod:`.metadata`), sharded arrays (:mod:`.shards`), writer, reader, the writer's
lock. Layout in README.md."""

from .format import FORMAT_NAME, FORMAT_VERSION, ChunkSpec, Feature, FeatureStats, FragmentInfo, Provenance, SourceFile, SplitSpec, StoreMeta
from .reader import Store, open_store
from .writer import FragmentWriter, StoreBuilder, prepare_store, write_store

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
    "FragmentWriter",
    "StoreBuilder",
    "prepare_store",
    "write_store",
]
