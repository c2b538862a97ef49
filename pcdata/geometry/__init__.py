"""Coordinates and detector geometry: relative hadronic jet coordinates, calorimeter binnings."""
