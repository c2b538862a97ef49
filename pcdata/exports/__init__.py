"""Writing a store out in other layouts (JetNet HDF5, CaloChallenge HDF5, Parquet, Arrow IPC)."""

from .arrow import export_arrow
from .calochallenge import export_calochallenge
from .jetnet import export_jetnet

__all__ = ["export_arrow", "export_calochallenge", "export_jetnet"]
