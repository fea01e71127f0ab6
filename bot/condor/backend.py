"""Where the worker finds its schedd and collector: a real pool (htcondor2) or the demo fake.

Runs inside the worker process only. Both backends hand out objects with the
``htcondor2.Schedd`` / ``htcondor2.Collector`` method signatures, so :mod:`bot.condor.ops` has one
code path.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from bot.condor.errors import CondorConfigError, CondorNotFound, translate
from bot.condor.models import PoolSpec

_SINFUL = re.compile(r"<[^<>\s]+>")
_HOSTPORT = re.compile(r"[A-Za-z0-9_.:\[\]-]+:\d{1,5}")


def sinful(address: str) -> str:
    """``host:port`` -> ``<host:port>``; a sinful string is returned as it is."""
    address = address.strip()
    if _SINFUL.fullmatch(address):
        return address
    if _HOSTPORT.fullmatch(address):
        return f"<{address}>"
    raise CondorConfigError(f"schedd_address {address!r} is neither <host:port?...> nor host:port")


class Backend(Protocol):
    spec: PoolSpec

    def schedd(self) -> Any: ...

    def collector(self) -> Any | None: ...

    @property
    def collector_label(self) -> str: ...

    def forget(self) -> None: ...


class CondorBackend:
    """A real pool through the htcondor2 bindings."""

    def __init__(self, spec: PoolSpec) -> None:
        import classad2
        import htcondor2

        self.spec = spec
        self._htcondor = htcondor2
        self._classad = classad2
        self._schedd: Any = None
        self._collector: Any = None

    @property
    def collector_label(self) -> str:
        return f"collector {self.spec.collector}" if self.spec.collector else "no collector"

    def schedd(self) -> Any:
        if self._schedd is not None:
            return self._schedd
        htcondor, classad = self._htcondor, self._classad
        spec = self.spec
        if spec.schedd_address:
            location = classad.ClassAd({
                "MyAddress": sinful(spec.schedd_address),
                "Name": spec.schedd or spec.schedd_address,
                "CondorVersion": htcondor.version(),
            })
        elif spec.collector:
            collector = self.collector()
            try:
                location = collector.locate(htcondor.DaemonType.Schedd, spec.schedd)
            except Exception as exc:
                raise translate(exc, daemon=self.collector_label) from None
            if location is None:  # Schedd(None) would silently mean "the local schedd"
                raise CondorNotFound(f"{self.collector_label} does not know schedd "
                                     f"{spec.schedd}: is it down or renamed?")
        else:
            location = None  # the local schedd, from this host's HTCondor configuration
        try:
            self._schedd = htcondor.Schedd(location)
        except Exception as exc:
            raise translate(exc, daemon=spec.label) from None
        return self._schedd

    def collector(self) -> Any | None:
        if not self.spec.collector:
            return None
        if self._collector is None:
            self._collector = self._htcondor.Collector(self.spec.collector)
        return self._collector

    def forget(self) -> None:
        """Locate the schedd again next time (after a connection failure: it may have moved)."""
        if self.spec.collector and not self.spec.schedd_address:
            self._schedd = None


class DemoBackend:
    """The fake pool of :mod:`bot.condor.demo`, living inside the worker."""

    def __init__(self, spec: PoolSpec) -> None:
        from bot.condor import demo

        self.spec = spec
        self._schedd, self._collector = demo.build(spec)

    @property
    def collector_label(self) -> str:
        return "collector demo"

    def schedd(self) -> Any:
        return self._schedd

    def collector(self) -> Any | None:
        return self._collector

    def forget(self) -> None:
        pass


def open_backend(spec: PoolSpec) -> Backend:
    if spec.backend == "demo":
        return DemoBackend(spec)
    if spec.backend == "htcondor":
        return CondorBackend(spec)
    raise CondorConfigError(f"pool {spec.name}: unknown backend {spec.backend!r}")
