"""Input formats, one module each: they validate and read files, and know nothing of stores."""

from .jetnet import JetNetSource

__all__ = ["JetNetSource"]
