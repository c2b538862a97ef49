"""Writing a store out in other layouts (JetNet HDF5; more formats register here)."""

from .jetnet import export_jetnet

__all__ = ["export_jetnet"]
