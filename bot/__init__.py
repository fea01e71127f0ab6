"""shiftbot: ChatOps for the on-call shifters of scientific pipelines."""

from typing import Any


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shiftbot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> Any:
    # ``bot.__version__`` is read from the installed metadata when first asked for: reading it
    # (importlib.metadata) is a noticeable part of a one-shot console command's start-up.
    if name == "__version__":
        value = globals()["__version__"] = _installed_version()
        return value
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
