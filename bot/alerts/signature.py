"""Sentry's webhook signature: ``Sentry-Hook-Signature`` = hex HMAC-SHA256 of the raw body.

The key is the integration's client secret (UTF-8), the message the request body *exactly as
received*: re-serialising parsed JSON (as a snippet in Sentry's docs does) changes the bytes and
never matches a real delivery, so :func:`verify` runs before anything parses the body.
"""

from __future__ import annotations

import hashlib
import hmac

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SIGNATURE_LENGTH = 64  # hex digits of a SHA-256


# hashlib lets go of the GIL while hashing more than 2047 bytes at once. On the event loop that
# is a loss: the loop then waits for the GIL behind the database thread (up to the 5 ms switch
# interval) to hash a few kilobytes it could have hashed in microseconds. Chunks this size
# keep it.
_CHUNK = 2047


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``secret`` (what Sentry sends)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    view = memoryview(body)
    for start in range(0, len(body), _CHUNK):
        mac.update(view[start:start + _CHUNK])
    return mac.hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is ``body``'s under ``secret``, in constant time. A missing,
    empty or malformed signature (and an empty secret, which would sign anything an attacker
    guesses) is False, never an exception."""
    if not secret or not isinstance(signature, str):
        return False
    candidate = signature.strip()
    if len(candidate) != _SIGNATURE_LENGTH or not _HEX_DIGITS.issuperset(candidate):
        return False
    # Both sides ASCII hex of equal length: compare_digest takes the same time for any input.
    return hmac.compare_digest(sign(secret, body), candidate.lower())
