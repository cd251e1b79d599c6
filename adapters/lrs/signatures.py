"""Signed statements (xAPI Data 2.6): the signature attachment is a JWS (RFC 7515, compact form).

The LRS checks that the signature attachment is ``application/octet-stream``, that the JWS parses,
uses RS256 / RS384 / RS512, and that its payload is the statement as it was before the signature
was attached (compared by the specification's statement equivalence). When the JWS header carries
an ``x5c`` certificate chain, the signature is verified against the first certificate's key.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import StatementInvalid
from .identity import comparable

ALGORITHMS = {"RS256": "SHA256", "RS384": "SHA384", "RS512": "SHA512"}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_signature(statement: dict[str, Any], attachment: dict[str, Any], data: Any, pointer: str) -> None:
    """Refuse (``StatementInvalid``) a signed statement whose signature is malformed or does not match it."""
    where = f"{pointer}/attachments"
    if attachment["contentType"].split(";")[0].strip().lower() != "application/octet-stream":
        raise StatementInvalid(
            f"a signature attachment must have contentType application/octet-stream, not {attachment['contentType']!r}",
            where,
        )
    if data is None:
        raise StatementInvalid("the signature attachment's data (the JWS) is missing from the request", where)
    try:
        header_b64, payload_b64, signature_b64 = data.content.decode("ascii").strip().split(".")
        header = json.loads(_b64url(header_b64))
        payload = json.loads(_b64url(payload_b64))
        signature = _b64url(signature_b64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatementInvalid(f"the signature is not a JWS in compact serialisation ({exc})", where) from None
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        alg = header.get("alg") if isinstance(header, dict) else None
        raise StatementInvalid(f"the JWS algorithm must be RS256, RS384 or RS512, not {alg!r}", where)
    if not isinstance(payload, dict):
        raise StatementInvalid("the JWS payload must be the signed statement (a JSON object)", where)
    unsigned = {k: v for k, v in statement.items() if k != "attachments"}
    payload = {k: v for k, v in payload.items() if k != "attachments"}
    try:
        matches = comparable(payload) == comparable(unsigned)
    except (KeyError, TypeError, ValueError, AttributeError):
        matches = False
    if not matches:
        raise StatementInvalid("the JWS payload differs from the statement it signs", where)
    if header.get("x5c"):
        _verify(header, f"{header_b64}.{payload_b64}".encode("ascii"), signature, where)


def _verify(header: dict[str, Any], signed: bytes, signature: bytes, where: str) -> None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        key = certificate.public_key()
    except (ValueError, TypeError, IndexError) as exc:
        raise StatementInvalid(f"the JWS x5c certificate cannot be read ({exc})", where) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise StatementInvalid("the JWS x5c certificate does not hold an RSA key", where)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), getattr(hashes, ALGORITHMS[header["alg"]])())
    except InvalidSignature:
        raise StatementInvalid("the JWS signature does not verify against its x5c certificate", where) from None
