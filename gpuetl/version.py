"""The installed gpuetl's version, for provenance and the command line: a layer-0 module of the standard library
only, so every module that records it imports it from here (never from the package facade, gpuetl/__init__.py)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpuetl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
