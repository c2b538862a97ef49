"""Sampling: generation of stores (or JetNet files) from trained runs."""

from .generate import generate_clouds, sample

__all__ = ["generate_clouds", "sample"]
