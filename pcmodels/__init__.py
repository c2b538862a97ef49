"""Generative models of point clouds trained from pcdata stores."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pointcloud-platform")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
