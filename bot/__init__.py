"""shiftbot: ChatOps for the on-call shifters of scientific pipelines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shiftbot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
