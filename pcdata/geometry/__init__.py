"""Coordinates and detector geometry: relative hadronic jet coordinates, calorimeter binnings,
exact voxel <-> point conversion."""

from .calo import CaloGeometry, get_geometry
from .jets import jet_from_constituents, jet_from_relative, to_absolute, to_relative, wrap_phi
from .voxels import clouds_to_voxels, voxels_to_clouds

__all__ = ["CaloGeometry", "get_geometry", "to_relative", "to_absolute", "wrap_phi", "jet_from_constituents",
           "jet_from_relative", "voxels_to_clouds", "clouds_to_voxels"]
