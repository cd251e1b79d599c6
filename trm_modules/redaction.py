"""Secrets never reach a log line: passwords in URLs, API tokens, Authorization values, key=value secrets.

``install_log_redaction`` wraps the process's ``LogRecord`` factory so that every record, from any
logger and through any handler (ours, uvicorn's, a library's), renders its message with ``redact``
applied. ``trm`` and ``trm serve`` install it at start.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host → scheme://user:***@host
    (re.compile(r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"), r"\g<keep>***"),
    # API tokens of trm serve: trm_<id>_<secret>
    (re.compile(r"\b(?P<keep>trm_[0-9a-f]{6,32}_)[A-Za-z0-9_-]{8,}"), r"\g<keep>***"),
    # Authorization header values
    (re.compile(r"(?i)(?P<keep>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<keep>***"),
    # password=…, "secret": "…", api_key: …
    (
        re.compile(
            r"(?i)(?P<keep>(?:password|passwd|secret|api[_-]?key|auth|token)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"',;&]+"
        ),
        r"\g<keep>***",
    ),
)

_installed = False


def redact(text: str) -> str:
    """``text`` with every secret the rules recognise replaced by ``***``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class _RedactedRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 - logging's name
        return redact(super().getMessage())


def install_log_redaction() -> None:
    """Make every log record of this process render its message redacted (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.__class__ = _RedactedRecord if type(record) is logging.LogRecord else record.__class__
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
