"""HTCondor test doubles: the demo pool (a fake schedd of real ClassAds) and two real failures.

* :func:`demo_pool` -- a ``condor.pools.<name>`` config entry using the demo backend; the same
  fake serves the demo and the tests (``bot/condor/demo.py``).
* :func:`closed_port` -- a loopback port nothing listens on: a real ``htcondor2.Schedd`` aimed
  at it fails at once with the genuine ``CEDAR:6001`` error.
* :class:`SilentServer` -- a loopback TCP server that accepts connections and never says a
  word: a real ``htcondor2.Schedd`` aimed at it hangs for HTCondor's fixed 20 s (holding the
  GIL), which is exactly what the worker's deadline must cut short.

Loopback only; tests set ``NO_PROXY=127.0.0.1,localhost`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from bot.condor.models import PoolSpec

CONDOR_HANDLERS = ["handlers.builtin", "handlers.approvals", "handlers.audit", "sample_handlers",
                   "handlers.condor", "handlers.condor_actions"]

GWCELERY_SCOPE = 'JobBatchName == "gwcelery" && Owner == "emfollow"'

# A small GWCelery-like description: one local service and two vanilla workers.
GWCELERY_SUB = """\
# like gwcelery.sub, shortened
universe = local
executable = /usr/bin/env
getenv = true
JobBatchName = gwcelery
arguments = "gwcelery beat -f gwcelery-beat.log"
description = gwcelery-beat
queue

+Online_EMFollow = True
Requirements = (TARGET.Online_EMFollow =?= True)
request_memory = 16GB
universe = vanilla
arguments = "gwcelery worker -n gwcelery-openmp-worker-$(Process)@%h -Q openmp"
description = gwcelery-openmp-worker-$(Process)
queue 2
"""


def demo_pool(**overrides: Any) -> dict[str, Any]:
    """A demo pool config entry; ``submit`` carries a ``gwcelery`` description by default."""
    pool: dict[str, Any] = {
        "backend": "demo",
        "demo_jobs": 300,
        "demo_seed": 1,
        "demo_remove_delay_seconds": 0.5,
        "timeout_seconds": 10,
        "submit": {
            "gwcelery": {
                "text": GWCELERY_SUB,
                "batch_name": "gwcelery",
                "attributes": {"accounting_group": "ligo.dev.o4.cbc.pe.bayestar",
                               "initialdir": "/home/emfollow/gwcelery"},
            },
        },
    }
    pool.update(overrides)
    return pool


def demo_spec(**overrides: Any) -> PoolSpec:
    """A PoolSpec for the demo backend, without going through the config."""
    values: dict[str, Any] = {"name": "demo", "backend": "demo", "demo_jobs": 300,
                              "demo_remove_delay": 0.5, "timeout": 10.0}
    values.update(overrides)
    return PoolSpec(**values)


def condor_roles() -> dict[str, Any]:
    """tests/conftest.py's roles with condor permissions: rm and resubmit for experts only."""
    viewer = ["help", "whoami", "why", "who-can", "sample.echo", "sample.table",
              "condor.q", "condor.analyze", "condor.pools"]
    return {
        "viewer": {"allow": viewer},
        "shifter": {"inherits": ["viewer"],
                    "allow": ["sample.*", "audit", "condor.hold", "condor.release"],
                    "approval": {"sample.restart": "expert"}},
        "expert": {"inherits": ["shifter"], "allow": ["sample.*", "audit", "condor.*"]},
    }


def condor_config(pools: dict[str, Any], **condor: Any) -> dict[str, Any]:
    """Overrides for conftest's ``make_config``/``make_bot``: handlers, roles and pools."""
    section: dict[str, Any] = {"pools": pools, "resubmit_poll_seconds": 0.1}
    section.update(condor)
    return {"bot": {"handlers": CONDOR_HANDLERS}, "roles": condor_roles(), "condor": section}


def closed_port() -> int:
    """A loopback TCP port with no listener (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a hung schedd).

    Runs in a thread so it is independent of the test's event loop; ``connections`` counts
    what was accepted (proof that the client really connected).
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-schedd", daemon=True)

    @property
    def address(self) -> str:
        return f"<127.0.0.1:{self.port}>"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._held.append(conn)  # keep it open, say nothing

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()
