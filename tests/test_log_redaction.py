"""No secret reaches a log line: passwords in URLs, API tokens, Authorization values, key=value secrets."""

from __future__ import annotations

import logging

import pytest

from trm_modules.redaction import install_log_redaction, redact


@pytest.mark.parametrize(
    "line, secret",
    [
        ("the LRS at http://user:pa55word@lrs.example/xapi/ is unreachable", "pa55word"),
        ("token trm_0123456789ab_AbCdEfGhIjKlMnOpQrStUvWxYz012345 revoked", "AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
        ("TRM_XAPI_LRS_AUTH=user:hunter22", "hunter22"),
    ],
)
def test_a_secret_is_replaced_by_stars(line, secret):
    assert secret not in redact(line) and "***" in redact(line)


def test_every_log_record_of_the_process_is_redacted_once_installed(caplog):
    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("trm_adapters.xapi").warning(
            "the LRS at %s is unreachable", "https://lms:s3cret-pw@lrs/xapi/"
        )
    assert "s3cret-pw" not in caplog.text and "https://lms:***@lrs/xapi/" in caplog.text


def test_a_url_without_a_password_is_left_alone():
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/trm"
    assert redact(url) == url
