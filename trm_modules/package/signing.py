"""Ed25519 signatures over a package's manifest, laid out like the OpenSSF model-signing bundle.

``signature.json`` holds a DSSE envelope whose payload is an in-toto Statement v1. The statement's
subject is the module (``name@version``) with the SHA-256 of the canonical manifest; its predicate
lists every resource (the manifest and each file it lists) with algorithm and digest. The signature
covers the DSSE pre-authentication encoding (PAE) of the payload. Because the manifest carries the
digest of every other file, one signature covers the whole package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyFileInvalid, SignatureInvalid, UntrustedKey
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, canonical_json
from .weights import parse_strict_json

MEDIA_TYPE = "application/vnd.trm-modules.signature.v1+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://trm-modules.org/spec/v1/package-signature"
PRIVATE_KEY_SUFFIX = ".key"
PUBLIC_KEY_SUFFIX = ".pub"

TrustedKeys = Union[str, os.PathLike, Ed25519PublicKey, Iterable[Union[str, os.PathLike, Ed25519PublicKey]]]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join([b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload])


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The key id used in envelopes and trust stores: hex SHA-256 of the raw public key."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()


def generate_keypair(out_dir: str | os.PathLike, name: str = "trm-signing") -> tuple[Path, Path]:
    """Write a new ed25519 key pair as ``out_dir/name.key`` (PKCS#8 PEM, mode 0600) and ``name.pub``.

    Refuses to overwrite existing key files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / f"{name}{PRIVATE_KEY_SUFFIX}"
    public_path = out_dir / f"{name}{PUBLIC_KEY_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileInvalid(f"{path} already exists; refusing to overwrite a key", file=str(path))
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read an unencrypted PKCS#8 PEM ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileInvalid(f"cannot read private key {path}: {exc}", file=str(path)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileInvalid(f"{path} is not an ed25519 private key", file=str(path))
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """Read a PEM (SubjectPublicKeyInfo) ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileInvalid(f"cannot read public key {path}: {exc}", file=str(path)) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileInvalid(f"{path} is not an ed25519 public key", file=str(path))
    return key


def load_trusted_keys(source: TrustedKeys) -> dict[str, Ed25519PublicKey]:
    """Trusted public keys by key id, from a folder of ``*.pub`` files, key files, or key objects."""
    items: Iterable[Any]
    if isinstance(source, (str, os.PathLike, Ed25519PublicKey)):
        items = [source]
    else:
        items = source
    keys: dict[str, Ed25519PublicKey] = {}
    for item in items:
        if isinstance(item, Ed25519PublicKey):
            keys[key_id(item)] = item
            continue
        path = Path(item)
        if path.is_dir():
            for pub in sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}")):
                key = load_public_key(pub)
                keys[key_id(key)] = key
        else:
            key = load_public_key(path)
            keys[key_id(key)] = key
    return keys


def copy_public_key(source: str | os.PathLike, wanted_key_id: str, folder: str | os.PathLike) -> Path | None:
    """Copy the ``*.pub`` file of ``source`` (a folder of them, or one key file) whose key id is ``wanted_key_id``
    into ``folder`` (created); its path there, or None when ``source`` holds no such key."""
    source = Path(source)
    candidates = sorted(source.glob(f"*{PUBLIC_KEY_SUFFIX}")) if source.is_dir() else [source]
    for path in candidates:
        if key_id(load_public_key(path)) == wanted_key_id:
            target = Path(folder) / path.name
            Path(folder).mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            return target
    return None


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_statement(manifest_data: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 that a signature over this manifest asserts."""
    manifest_digest = _sha256_hex(canonical_json(manifest_data))
    resources = [{"name": MANIFEST_NAME, "algorithm": "sha256", "digest": manifest_digest}]
    resources += [{"name": f["path"], "algorithm": "sha256", "digest": f["sha256"]} for f in manifest_data["files"]]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": f"{manifest_data['name']}@{manifest_data['version']}", "digest": {"sha256": manifest_digest}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "manifest_canonicalization": "json-sorted-keys-compact-utf8",
            },
            "resources": resources,
        },
    }


def sign_manifest(manifest_data: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ``signature.json`` document signing ``manifest_data`` with ``private_key``."""
    payload = canonical_json(build_statement(manifest_data))
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    public_key = private_key.public_key()
    kid = key_id(public_key)
    return {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": kid, "rawBytes": base64.b64encode(public_key_bytes(public_key)).decode()}
        },
        "dsseEnvelope": {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": kid, "sig": base64.b64encode(signature).decode()}],
        },
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureInvalid(f"{what} must be a base64 string", file=SIGNATURE_NAME)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid(f"{what} is not valid base64: {exc}", file=SIGNATURE_NAME) from exc


def verify_signature(
    signature_data: Any, manifest_data: dict[str, Any], trusted_keys: dict[str, Ed25519PublicKey] | None = None
) -> str:
    """Check ``signature.json`` against the manifest; return the id of the key that signed.

    Without ``trusted_keys`` the signature must verify with the key it embeds (integrity);
    with them, it must also come from one of them (``UntrustedKey`` otherwise).
    """
    if not isinstance(signature_data, dict) or signature_data.get("mediaType") != MEDIA_TYPE:
        raise SignatureInvalid(f"signature.json must be an object with mediaType {MEDIA_TYPE!r}", file=SIGNATURE_NAME)
    envelope = signature_data.get("dsseEnvelope")
    material = signature_data.get("verificationMaterial")
    if (
        not isinstance(envelope, dict)
        or not isinstance(material, dict)
        or not isinstance(material.get("publicKey"), dict)
    ):
        raise SignatureInvalid(
            "signature.json needs dsseEnvelope and verificationMaterial.publicKey", file=SIGNATURE_NAME
        )
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureInvalid(f"payloadType must be {PAYLOAD_TYPE!r}", file=SIGNATURE_NAME)
    payload = _b64(envelope.get("payload"), "the envelope payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or not all(isinstance(s, dict) for s in signatures):
        raise SignatureInvalid("the envelope holds no signatures", file=SIGNATURE_NAME)
    raw_key = _b64(material["publicKey"].get("rawBytes"), "the embedded public key")
    try:
        embedded = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError as exc:
        raise SignatureInvalid(f"the embedded public key is not an ed25519 key: {exc}", file=SIGNATURE_NAME) from exc
    embedded_id = key_id(embedded)
    message = pae(PAYLOAD_TYPE, payload)

    verified_by: str | None = None
    for entry in signatures:
        if entry.get("keyid") != embedded_id:
            continue
        try:
            embedded.verify(_b64(entry.get("sig"), "a signature"), message)
        except InvalidSignature:
            raise SignatureInvalid(
                f"the signature by key {embedded_id[:16]}… does not verify: the package "
                "was changed after signing, or the signature is corrupt",
                file=SIGNATURE_NAME,
            )
        verified_by = embedded_id
    if verified_by is None:
        raise SignatureInvalid("no signature in the envelope is by the embedded public key", file=SIGNATURE_NAME)

    try:
        statement = parse_strict_json(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureInvalid(f"the signed payload is not JSON: {exc}", file=SIGNATURE_NAME) from exc
    if canonical_json(statement) != canonical_json(build_statement(manifest_data)):
        raise SignatureInvalid(
            "the signed statement does not match this package's manifest (subject or "
            "resource digests differ): the package was changed after signing",
            file=SIGNATURE_NAME,
        )

    if trusted_keys is not None and verified_by not in trusted_keys:
        raise UntrustedKey(
            f"the package is signed by key {verified_by}, which is not among the {len(trusted_keys)} trusted key(s)",
            file=SIGNATURE_NAME,
        )
    if trusted_keys is not None:
        # Verify again with the trusted copy of the key, not only the embedded one.
        try:
            trusted_keys[verified_by].verify(
                _b64(next(s["sig"] for s in signatures if s.get("keyid") == verified_by), "a signature"), message
            )
        except InvalidSignature as exc:
            raise SignatureInvalid("the signature does not verify with the trusted key", file=SIGNATURE_NAME) from exc
    return verified_by
