"""``pcdata ingest root``: ROOT trees (per-jet JetClass layout or NanoAOD-style collections) -> store."""

from __future__ import annotations

import os
from typing import Any, Literal, Sequence

from ..errors import SourceError
from ..sources.root import (CollectionSpec, JetTreeSpec, RootCollectionSource, RootJetSource, entries_per_step, feature_unit,
                           load_mapping, spec_from_mapping)
from ..store.format import Feature, SplitSpec, StoreMeta
from ..store.reader import Store
from ..store.writer import JET_CHUNKS
from .formats import InputFormat, register_format
from .jetnet import jetnet_template
from .options import IngestOptions
from .pipeline import ingest

__all__ = ["ingest_root"]

#: Entries per fragment when none is given: about this much uncompressed data per step.
STEP = "64 MB"


def _jets_template(source: RootJetSource, splits: SplitSpec) -> StoreMeta:
    base = jetnet_template(0, splits)
    labels = [name.removeprefix("label_") for name in source.labels]
    fields = tuple(f for f in base.cloud_features if f.name in ("pt", "eta", "mass"))
    fields = fields[:2] + (Feature("phi", "rad", "float32", "jet azimuth"),) + fields[2:] + (
        Feature("num_particles", "", "int32", "constituents of the jet"),
        Feature("label", "", "int32", "index into attrs.labels of the true label_* branch, -1 if none"),
    )
    from dataclasses import replace

    return replace(base, cloud_features=fields, attrs={"source_layout": "root-jets", "tree": source.files[0].tree,
                                                        "constituents": source.mode, "labels": labels})


def _collection_template(source: RootCollectionSource, splits: SplitSpec) -> StoreMeta:
    s = source.spec
    return StoreMeta(
        kind="events",
        coords="absolute",
        point_features=tuple(Feature(x, feature_unit(x), "float32", f"{s.branch(x)}") for x in s.features),
        cloud_features=tuple(Feature(x, "", source.field_dtypes[x], f"per-event branch {x}") for x in s.event_fields),
        splits=splits,
        attrs={"source_layout": "root-collection", "tree": source.files[0].tree, "collection": s.collection},
    )


def _rows_per_fragment(path: str, tree: str, branches: list[str]) -> int:
    return entries_per_step(path, tree, branches, STEP)


def _open(
    paths: Sequence[str | os.PathLike],
    *,
    tree: str | None = None,
    layout: Literal["jets", "collection"] | None = None,
    collection: str | None = None,
    features: Sequence[str] | None = None,
    event_fields: Sequence[str] = (),
    mapping: str | os.PathLike | None = None,
) -> RootJetSource | RootCollectionSource:
    doc = load_mapping(mapping) if mapping else {}
    tree = tree or doc.get("tree")
    if not tree:
        raise SourceError("tree: name the TTree or RNTuple to read (or give it in the mapping file)")
    collection = collection or doc.get("collection")
    layout = layout or doc.get("layout") or ("collection" if collection else "jets")
    if layout == "collection":
        if not collection:
            raise SourceError("collection: name the collection X to read from nX and X_<feature>")
        feats = tuple(features or doc.get("features") or ())
        fields = tuple(event_fields or doc.get("event_fields") or ())
        return RootCollectionSource.open(paths, tree=tree, spec=CollectionSpec(collection, feats, fields))
    spec = spec_from_mapping(doc) if doc else JetTreeSpec()
    return RootJetSource.open(paths, tree=tree, spec=spec)


def _branches(source: RootJetSource | RootCollectionSource) -> list[str]:
    """The branches that make up most of the data (they set the default fragment size)."""
    if isinstance(source, RootCollectionSource):
        return [source.spec.branch(x) for x in source.spec.features]
    spec = source.spec
    return [spec.px, spec.py, spec.pz, spec.energy] if source.mode == "four-vector" else [spec.deta, spec.dphi, spec.pt]


def _identity(source: RootJetSource | RootCollectionSource, params: dict[str, Any]) -> dict[str, Any]:
    # What was read, however it was named (flags or a mapping file).
    if isinstance(source, RootCollectionSource):
        s = source.spec
        return {"layout": "collection", "tree": source.files[0].tree, "collection": s.collection,
                "features": list(s.features), "event_fields": list(s.event_fields)}
    return {"layout": "jets", "tree": source.files[0].tree, "spec": vars(source.spec)}


ROOT = register_format(InputFormat(
    name="root",
    open=_open,
    template=lambda source, splits: (_collection_template(source, splits) if isinstance(source, RootCollectionSource)
                                     else _jets_template(source, splits)),
    rows_per_fragment=lambda source: _rows_per_fragment(source.files[0].path, source.files[0].tree, _branches(source)),
    chunks=JET_CHUNKS,
    identity=_identity,
))


def ingest_root(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    tree: str | None = None,
    layout: Literal["jets", "collection"] | None = None,
    collection: str | None = None,
    features: Sequence[str] | None = None,
    event_fields: Sequence[str] = (),
    mapping: str | os.PathLike | None = None,
    options: IngestOptions = IngestOptions(),
    cluster: Any = None,
) -> Store:
    """Convert ROOT trees into a store, reading each file in entry ranges on Dask workers.

    Args:
        files: ROOT files holding the same tree.
        out: the store directory.
        tree: the TTree name (or from the mapping file).
        layout: ``jets`` (one entry per jet, JetClass branches) or ``collection`` (one cloud per
            event from ``n<collection>`` and ``<collection>_<feature>``); default ``collection``
            when a collection is named, else ``jets``.
        collection, features, event_fields: the collection layout's branches.
        mapping: a YAML file with ``layout``, ``tree``, ``branches`` (JetTreeSpec roles),
            ``collection``, ``features``, ``event_fields``; explicit arguments win.
        options: as for :func:`pcdata.ingest.ingest_jetnet` (default fragment: about 64 MB of
            branch data).
        cluster: where the work runs (see :func:`pcdata.ingest.ingest`).

    Raises:
        SourceError: a missing tree or branch, a wrong branch type, jagged lengths that disagree;
            nothing is left behind.
    """
    return ingest("root", files, out, options=options, cluster=cluster, tree=tree, layout=layout, collection=collection,
                  features=features, event_fields=event_fields, mapping=mapping)
