"""Plain, picklable errors with one-line messages a shifter can act on at 3 a.m.

``htcondor2.HTCondorException`` does not pickle and its messages are CEDAR/SECMAN jargon, so
the worker translates every failure into one of these before it crosses the pipe
(:func:`translate`). The handler shows ``str(error)`` as is: no tracebacks reach users.
"""

from __future__ import annotations

import re


class CondorError(Exception):
    """Base class. ``str(error)`` is the whole message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[CondorError], tuple[str]]:
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class CondorUnreachable(CondorError):
    """Connection refused, host down, DNS failure: nothing answered at all."""


class CondorAuthError(CondorError):
    """The daemon answered but refused us (authentication or authorization)."""


class CondorNotFound(CondorError):
    """A schedd not known to the collector, a job not in the queue (or outside the scope)."""


class CondorBadConstraint(CondorError):
    """A constraint (from chat or from the config) is not a valid ClassAd expression."""


class CondorTimeout(CondorError):
    """The worker did not answer within the deadline; it was killed and is being respawned."""


class CondorBusy(CondorError):
    """An earlier request to the same pool still holds the worker past our deadline."""


class CondorConfigError(CondorError):
    """Unknown pool, unknown submit description, unreadable submit file."""


class CondorRefused(CondorError):
    """The request makes no sense in the current state (submit while jobs exist, ...)."""


class CondorWorkerError(CondorError):
    """The worker process died or spoke garbage: an internal problem, already logged."""


# --------------------------------------------------------------------------- translation

_UNREACHABLE = re.compile(
    r"CEDAR:6001|Failed to connect|connect errno|Connection refused|No route to host"
    r"|Can't find address|Failed to locate|unable to resolve|could not resolve",
    re.IGNORECASE,
)
_SILENT = re.compile(r"SECMAN:2007|did not respond in a reasonable time", re.IGNORECASE)
_AUTH = re.compile(
    r"AUTHENTICATE|SECMAN:20(0[0-6]|1\d)|PERMISSION DENIED|not authorized|DENIED"
    r"|no authentication methods|security session",
    re.IGNORECASE,
)
_COLLECTOR = re.compile(r"communication with collector|collector", re.IGNORECASE)


def translate(exc: BaseException, *, daemon: str, where: str = "") -> CondorError:
    """Turn anything the bindings raise into a :class:`CondorError` with a plain message.

    ``daemon`` names what we were talking to (``schedd gwcelery@emfollow`` or ``collector
    cm.ldas.cit:9618``); ``where`` is an optional address shown for unreachable daemons.
    """
    if isinstance(exc, CondorError):
        return exc
    name = type(exc).__name__
    raw = " ".join(str(exc).split())  # one line, whatever the bindings produced
    at = f" at {where}" if where else ""
    if name == "ClassAdException":
        return CondorBadConstraint(
            f"{daemon}: not a valid ClassAd expression ({raw or 'parse error'})")
    if name == "HTCondorException" or isinstance(exc, OSError):
        if _SILENT.search(raw):
            return CondorTimeout(f"{daemon}{at} accepted the connection but did not answer "
                                 "(overloaded or hung); try again in a few minutes")
        if _AUTH.search(raw):
            return CondorAuthError(f"{daemon}{at} refused us: authentication or authorization "
                                   "failed (check the token and the _CONDOR_SEC_* settings of "
                                   "this pool)")
        if _UNREACHABLE.search(raw) or (_COLLECTOR.search(raw) and "Failed" in raw):
            return CondorUnreachable(f"{daemon}{at} is unreachable (connection refused or host "
                                     "down)")
        if not raw:
            return CondorError(f"{daemon} rejected the request without a reason (often an "
                               "invalid constraint)")
        return CondorError(f"{daemon}: {raw}")
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return CondorError(f"{daemon}: {raw or name}")
    return CondorWorkerError(f"{daemon}: unexpected {name}: {raw}"[:300])
