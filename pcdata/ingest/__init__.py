"""Ingest pipelines on Dask: sources become store fragments. One module per input kind."""

from .calochallenge import ingest_calochallenge
from .cluster import dask_client
from .jetnet import ingest_jetnet
from .pipeline import run_ingest
from .root import ingest_root

__all__ = ["dask_client", "ingest_calochallenge", "ingest_jetnet", "ingest_root", "run_ingest"]
