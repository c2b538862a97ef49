"""Writing a store out in other layouts (JetNet HDF5, CaloChallenge HDF5; more formats register here)."""

from .calochallenge import export_calochallenge
from .jetnet import export_jetnet

__all__ = ["export_calochallenge", "export_jetnet"]
