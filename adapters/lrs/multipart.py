"""``multipart/mixed`` bodies of the Statement resource (statements + attachment data), both ways.

Reading uses ``python-multipart``'s streaming parser (already a server dependency; it handles
boundaries, preambles and binary parts correctly); writing is a few lines.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Sequence

from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import StatementInvalid
from .statements import Attachment

HASH_HEADER = "x-experience-api-hash"


@dataclass
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


def boundary_of(content_type: str) -> str | None:
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return boundary.decode("latin-1") if boundary else None


def parse_parts(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body (headers lower-cased)."""
    parts: list[Part] = []
    name = bytearray()
    value = bytearray()

    def on_part_begin() -> None:
        parts.append(Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        name.clear()
        value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].body.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
        max_header_count=32,
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - the parser raises its own error types for malformed bodies
        raise StatementInvalid(f"the multipart/mixed body cannot be parsed: {exc}", "") from None
    return parts


def read_statement_parts(body: bytes, content_type: str) -> tuple[Any, list[Attachment]]:
    """(the statements JSON, the attachment data) of a ``multipart/mixed`` statement request."""
    boundary = boundary_of(content_type)
    if not boundary:
        raise StatementInvalid("a multipart/mixed request needs a boundary parameter in its Content-Type", "")
    parts = parse_parts(body, boundary)
    if not parts:
        raise StatementInvalid("the multipart/mixed body has no parts; the first must hold the statements", "")
    first = parts[0]
    if first.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise StatementInvalid(
            "the first part of a multipart/mixed request must be the statements, with Content-Type application/json", ""
        )
    try:
        statements = json.loads(bytes(first.body))
    except ValueError as exc:
        raise StatementInvalid(f"the statements part is not JSON: {exc}", "") from None
    attachments = []
    for index, part in enumerate(parts[1:], start=1):
        declared = part.headers.get(HASH_HEADER)
        if not declared:
            raise StatementInvalid(f"multipart part {index} has no X-Experience-API-Hash header", "")
        if part.headers.get("content-transfer-encoding", "binary").lower() != "binary":
            raise StatementInvalid(f"multipart part {index} must use Content-Transfer-Encoding: binary", "")
        content = bytes(part.body)
        if hashlib.sha256(content).hexdigest() != declared.lower():
            raise StatementInvalid(
                f"multipart part {index}: its SHA-256 is not the X-Experience-API-Hash {declared}", ""
            )
        attachments.append(Attachment(declared, part.headers.get("content-type", "application/octet-stream"), content))
    return statements, attachments


def write_parts(document: Any, attachments: Sequence[Attachment]) -> tuple[bytes, str]:
    """(body, content type) of a ``multipart/mixed`` response: the JSON document, then each attachment."""
    boundary = "xapi-" + secrets.token_hex(12)
    chunks = [
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
        json.dumps(document, separators=(",", ":")).encode(),
        b"\r\n",
    ]
    for attachment in attachments:
        chunks += [
            f"--{boundary}\r\nContent-Type: {attachment.content_type}\r\n"
            f"Content-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {attachment.sha2}\r\n\r\n".encode(),
            attachment.content,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"
