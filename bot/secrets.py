"""Secrets: masked everywhere they could leak (reprs, logs, errors, audit entries).

Config secrets are pydantic ``SecretStr`` (masked in reprs). Every secret value loaded is also
registered with the process-wide :data:`masker`, whose :meth:`SecretMasker.mask` replaces any
occurrence in free text; the logging filter, the audit writer, replies to chat and ``/healthz``
call it. A secret reaches text escaped as often as raw (``repr()`` in a config problem, JSON in
an audit row, a URL), so each escaped spelling of it is registered too (:func:`spellings`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words; check-config warns about them


def _escaped(value: str, quote_char: str | None, *, ascii_only: bool) -> str:
    """``value`` as it appears inside ``repr()``/``ascii()`` of a longer string, whose quotes
    (``quote_char`` escaped, or None: the other quote) depend on the whole string."""
    out = []
    for char in value:
        if char in "'\"":
            out.append("\\" + char if char == quote_char else char)
        else:
            out.append((ascii if ascii_only else repr)(char)[1:-1])
    return "".join(out)


def spellings(value: str) -> set[str]:
    """``value`` raw and as each escaping that may print it: repr/ascii (either quote), JSON
    (with and without ``ensure_ascii``), percent-encoding."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             quote(value, safe=""), quote(value), quote_plus(value, safe="")}
    for quote_char in ("'", '"', None):
        for ascii_only in (False, True):
            forms.add(_escaped(value, quote_char, ascii_only=ascii_only))
    return forms


class SecretMasker:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        # Very short values would mask ordinary words; nobody uses a 3-character token.
        if not value or len(value) < MIN_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                self._values |= spellings(value)
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    @property
    def active(self) -> bool:
        """Whether any secret is registered (else masking is skipped: nothing to find)."""
        return self._pattern is not None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds any registered secret (anywhere in it)."""
        pattern = self._pattern
        return bool(pattern is not None and text and pattern.search(text))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


masker = SecretMasker()


class MaskingFilter(logging.Filter):
    """Masks registered secrets in every log record: the message with its arguments, and the
    traceback and stack text (an exception's message often quotes what it failed on)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if masker._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = None
        if message is not None:
            masked = masker.mask(message)
            if masked != message or record.args:
                record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters print a cached exc_text instead of formatting exc_info again, so the
            # masked text is what every handler shows. exc_info stays for Sentry's logging
            # integration, whose events are masked by before_send (bot/observability.py).
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.mask(record.stack_info)
        return True


def install_log_masking() -> None:
    """Attach the masking filter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
