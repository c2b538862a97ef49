"""Ingest on Dask: input files of a registered format become a store. One module per format.

``ingest(format, files, out, options=IngestOptions(...), cluster=...)`` is the one pipeline;
``ingest_jetnet``, ``ingest_calochallenge`` and ``ingest_root`` name their format's parameters.
"""

from .calochallenge import ingest_calochallenge
from .formats import FORMATS, InputFormat, register_format
from .jetnet import ingest_jetnet
from .options import IngestOptions
from .pipeline import ingest, run_ingest
from .root import ingest_root
from .visibility import WorkerVisibilityError

__all__ = ["FORMATS", "IngestOptions", "InputFormat", "WorkerVisibilityError", "ingest", "ingest_calochallenge",
           "ingest_jetnet", "ingest_root", "register_format", "run_ingest"]
