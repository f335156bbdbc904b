"""sonic-exatrkx: ExaTrkX GNN track finding as a service, in an event-loop framework."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sonic-exatrkx")  # one source: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
