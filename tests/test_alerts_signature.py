"""Sentry-Hook-Signature: hex HMAC-SHA256 of the raw body under the client secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from fakes.sentry_sender import samples

from bot.alerts.signature import sign, verify

SECRET = "c2VudHJ5LWNsaWVudC1zZWNyZXQ-0123456789abcdef"
BODIES = [json.dumps(p, separators=(",", ":")).encode() for p in samples().values()]
BODIES += [b"", b"\x00\xff not utf-8 \xfe", "ünïcödé ✓".encode()]


def expected(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("body", BODIES)
def test_sign_is_hmac_sha256_hex_of_the_raw_bytes(body: bytes) -> None:
    assert sign(SECRET, body) == expected(SECRET, body)
    assert verify(SECRET, body, expected(SECRET, body))
    assert verify(SECRET, body, expected(SECRET, body).upper())  # hex case does not matter
    assert verify(SECRET, body, f" {expected(SECRET, body)}\t")  # header whitespace


def test_a_non_ascii_secret_is_utf8() -> None:
    secret = "sécret-ü-✓"
    assert sign(secret, b"x") == hmac.new(secret.encode("utf-8"), b"x", "sha256").hexdigest()


@pytest.mark.parametrize("body", BODIES[:4])
def test_any_changed_byte_fails(body: bytes) -> None:
    good = sign(SECRET, body)
    rng = random.Random(len(body))
    for _ in range(50):
        if not body:
            break
        at = rng.randrange(len(body))
        changed = body[:at] + bytes([body[at] ^ (1 + rng.randrange(255))]) + body[at + 1:]
        assert not verify(SECRET, changed, good)
    assert not verify(SECRET, body + b" ", good)
    assert not verify(SECRET, body[:-1], good) or not body


def test_reserialised_json_does_not_match() -> None:
    """Sentry signs the bytes it sent: parsing and dumping again changes them."""
    body = BODIES[0]
    again = json.dumps(json.loads(body), indent=2).encode()
    assert not verify(SECRET, again, sign(SECRET, body))


@pytest.mark.parametrize("signature", [
    None, "", "   ", "0" * 64, "g" * 64, "abc", "z" * 63, "0" * 65, 12345, b"bytes",
    "é" * 64, "\x00" * 64, sign("another secret", b"{}"), "sha256=" + sign(SECRET, b"{}"),
])
def test_missing_or_malformed_signatures_are_false(signature: object) -> None:
    assert verify(SECRET, b"{}", signature) is False  # type: ignore[arg-type]


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify("", b"{}", sign("", b"{}"))


def test_wrong_secret_fails() -> None:
    for body in BODIES:
        assert not verify(SECRET + "x", body, sign(SECRET, body))
