"""tensor-fusion: GPU pooling and virtualization for Kubernetes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tensorfusion.shim import shim_path

try:
    __version__ = version("tensorfusion")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "shim_path"]
