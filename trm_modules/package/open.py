"""``open_package``: every check a package must pass before anything in it is used.

Order: container (size, zip structure, names, types, compression, limits) → manifest (JSON,
format version, schema, semantics) → inventory (every file listed, present, size and SHA-256)
→ signature → weights header and tensors against the config → task schemas and examples.
Nothing is executed or unpickled; the weights are only parsed, not loaded, until ``load_model``.

The whole file's SHA-256 (the package digest) is computed on a worker thread while the members are
hashed and checked here (``digests``); it is checked against an expected digest, when one is given,
before ``open_package`` returns. A ``DigestCache`` skips both hashing passes for a file whose identity
(inode, size, mtime, ctime) is unchanged since its digests were verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pluggy
from jsonschema.exceptions import best_match

from .archive import Archive, Limits, read_archive
from .digests import DigestCache, FileIdentity, VerifiedDigests, hash_in_background, sha256_hex
from .errors import (
    DigestMismatch,
    DocumentInvalid,
    ManifestInvalid,
    MissingFile,
    PackageError,
    SizeLimitExceeded,
    UnlistedFile,
    UnsignedPackage,
)
from .layout import (
    CARD_NAME,
    EXAMPLE_PATTERN,
    INPUT_SCHEMA_NAME,
    MANIFEST_NAME,
    OUTPUT_SCHEMA_NAME,
    REQUIRED_FILES,
    SIGNATURE_NAME,
)
from ..solving import ExampleResult
from .loaded import Package
from ..errors import json_pointer
from .manifest import Manifest, parse_manifest
from .signing import TrustedKeys, load_trusted_keys, verify_signature
from .task_schema import check_task_schema, task_validator
from .weights import (
    check_config_within_limits,
    check_tensors_match_config,
    expected_parameter_count,
    parse_strict_json,
    read_weights_header,
)


def read_package_bytes(path: Path, limits: Limits) -> tuple[bytes, FileIdentity]:
    """The bytes of the package file and the identity of the file they were read from.

    Files over ``limits.max_package_bytes`` are refused before reading; a file that changes while it
    is read (its identity differs before and after) is refused rather than half-read.
    """
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            if before.st_size > limits.max_package_bytes:
                raise SizeLimitExceeded(
                    f"the package is {before.st_size:,} bytes, over the limit of {limits.max_package_bytes:,}",
                    file=str(path),
                )
            # Exactly the size fstat reported, plus one byte to notice a file that grew: asking for the
            # limit would make the reader allocate (and fault in) a buffer of the limit's size first.
            data = fh.read(before.st_size + 1)
            identity = FileIdentity.of(os.fstat(fh.fileno()))
    except OSError as exc:
        raise PackageError(f"cannot read package {path}: {exc.strerror or exc}", file=str(path), rule="io") from exc
    if identity != FileIdentity.of(before) or len(data) != identity.size:
        raise PackageError(f"{path} changed while it was being read", file=str(path), rule="io")
    return data, identity


def read_json_member(archive: Archive, name: str, limits: Limits, error: type[PackageError] = DocumentInvalid) -> Any:
    """Parse archive member ``name`` as strict JSON (bounded size, no duplicate keys, no NaN)."""
    if name not in archive:
        raise MissingFile(f"the package has no {name}", file=name)
    if archive.entries[name].size > limits.max_json_bytes:
        raise SizeLimitExceeded(
            f"{name} is {archive.entries[name].size:,} bytes, over the JSON document limit of "
            f"{limits.max_json_bytes:,}",
            file=name,
        )
    try:
        return parse_strict_json(archive.read(name))
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{name} is not valid JSON: {exc}", file=name) from exc


def check_inventory(archive: Archive, manifest: Manifest, verified: dict[str, str] | None = None) -> dict[str, str]:
    """Every member is listed (or reserved), every listed file is present with its size and SHA-256.

    ``verified``: member digests already checked for these very bytes (``DigestCache``); a member
    whose declared digest is among them is not hashed again. Returns path → SHA-256 of every member.
    """
    listed = {entry.path for entry in manifest.files}
    for name in archive.names:
        if name not in listed and name not in (MANIFEST_NAME, SIGNATURE_NAME):
            raise UnlistedFile(f"{name} is in the archive but manifest.json files does not list it", file=name)
    for index, entry in enumerate(manifest.files):
        if entry.path not in archive:
            raise MissingFile(f"manifest.json lists {entry.path}, which the archive does not contain", file=entry.path)
        actual_size = archive.entries[entry.path].size
        if actual_size != entry.size:
            raise DigestMismatch(
                f"{entry.path} is {actual_size:,} bytes; the manifest declares {entry.size:,}", file=entry.path
            )
        if verified is not None and verified.get(entry.path) == entry.sha256:
            continue
        actual = sha256_hex(archive.read(entry.path))
        if actual != entry.sha256:
            raise DigestMismatch(
                f"{entry.path} has SHA-256 {actual}; the manifest declares {entry.sha256}", file=entry.path
            )
    for name in REQUIRED_FILES:
        if name not in listed:
            raise MissingFile(f"the format requires {name}, which the package does not contain", file=name)
    return {entry.path: entry.sha256 for entry in manifest.files}


class _Verdicts:
    """Content-addressed memo of checks that passed ("these schema bytes are a valid schema"), bounded.

    Keys are SHA-256 digests of the checked bytes, verified against the manifest first, so a
    verdict is reused only for identical content: the versions of one module ship the same schemas
    and examples, and a host opens them again and again.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._passed: set[tuple[str, ...]] = set()
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def passed(self, *key: str) -> bool:
        return key in self._passed

    def remember(self, *key: str) -> None:
        if len(self._passed) >= self.max_entries:
            self._passed.clear()
        self._passed.add(key)

    def validator(self, schema_digest: str, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        found = self._validators.get(schema_digest)
        if found is None:
            if len(self._validators) >= 64:
                self._validators.clear()
            found = self._validators[schema_digest] = task_validator(schema)
        return found


_VERDICTS = _Verdicts()


def read_examples(
    archive: Archive,
    limits: Limits,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    digests: dict[str, str] | None = None,
) -> tuple[list[str], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The example pairs under ``examples/``, each validated against the package's task schemas.

    ``digests``: member path → verified SHA-256 (``check_inventory``); with them, an example already
    validated against the same schema bytes is not validated again.
    """
    digests = digests or {}
    found: dict[str, dict[str, str]] = {}
    for name in archive.names:
        if name.startswith("examples/"):
            match = EXAMPLE_PATTERN.match(name)
            if match is None:
                raise DocumentInvalid(
                    f"{name} is not named examples/<id>.input.json or examples/<id>.output.json",
                    file=name,
                    rule="example-name",
                )
            found.setdefault(match.group(1), {})[match.group(2)] = name
    schemas = {"input": (INPUT_SCHEMA_NAME, input_schema), "output": (OUTPUT_SCHEMA_NAME, output_schema)}
    names, pairs = [], []
    for example_id in sorted(found):
        members = found[example_id]
        docs = {}
        for side in ("input", "output"):
            if side not in members:
                missing = f"examples/{example_id}.{side}.json"
                raise MissingFile(f"example {example_id} has no {side} ({missing})", file=missing)
            doc = read_json_member(archive, members[side], limits)
            schema_name, schema = schemas[side]
            key = (digests.get(schema_name, ""), digests.get(members[side], ""))
            if not (all(key) and _VERDICTS.passed(*key)):
                validator = _VERDICTS.validator(key[0], schema) if key[0] else task_validator(schema)
                error = best_match(validator.iter_errors(doc))
                if error is not None:
                    raise DocumentInvalid(
                        f"example {example_id} {side} breaks the package's {side} schema: {error.message}",
                        file=members[side],
                        path=json_pointer(error.absolute_path),
                    )
                if all(key):
                    _VERDICTS.remember(*key)
            docs[side] = doc
        names.append(example_id)
        pairs.append((docs["input"], docs["output"]))
    return names, pairs


def read_task_schema(archive: Archive, name: str, limits: Limits, digest: str | None = None) -> dict[str, Any]:
    """A task JSON Schema from the package, itself checked against the draft 2020-12 metaschema.

    ``digest``: the member's verified SHA-256; bytes already checked are not checked again.
    """
    schema = read_json_member(archive, name, limits)
    if not (digest and _VERDICTS.passed("schema", digest)):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise DocumentInvalid(
                f"{name} is not a valid JSON Schema: {exc.message}", file=name, path=json_pointer(exc.absolute_path)
            ) from exc
    if not isinstance(schema, dict):
        raise DocumentInvalid(f"{name} must be a JSON Schema object", file=name)
    check_task_schema(schema, name)
    if digest:
        _VERDICTS.remember("schema", digest)
    return schema


def open_package(
    path: str | os.PathLike,
    trusted_keys: TrustedKeys | None = None,
    *,
    limits: Limits | None = None,
    expected_digest: str | None = None,
    digest_cache: DigestCache | None = None,
) -> Package:
    """Open and check a ``.trm`` package; raise a typed ``PackageError`` on the first rule it breaks.

    ``trusted_keys`` (a folder of ``*.pub`` files, key files or key objects): when given, the
    package must be signed by one of them. A signature that is present must verify either way.
    ``expected_digest`` (``"sha256:<hex>"``, a registry index's record): the file must have it.
    ``digest_cache``: digests verified earlier for this very file are not computed again.
    """
    path = Path(path)
    limits = limits or Limits()
    data, identity = read_package_bytes(path, limits)
    known = digest_cache.get(identity) if digest_cache is not None else None
    whole_digest = None if known is not None else hash_in_background(data)  # overlaps every check below
    archive = read_archive(data, limits, source=str(path))
    manifest_data = read_json_member(archive, MANIFEST_NAME, limits, error=ManifestInvalid)
    manifest = parse_manifest(manifest_data)
    members = check_inventory(archive, manifest, known.members if known is not None else None)

    signed_by = None
    trusted = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    if SIGNATURE_NAME in archive:
        signature = read_json_member(archive, SIGNATURE_NAME, limits, error=PackageError)
        signed_by = verify_signature(signature, manifest_data, trusted)
    elif trusted is not None:
        raise UnsignedPackage("trusted keys were given but the package carries no signature.json", file=SIGNATURE_NAME)

    weights_name = manifest.model.weights
    header = read_weights_header(
        archive.read(weights_name),
        max_header_bytes=limits.max_safetensors_header_bytes,
        max_tensors=limits.max_tensors,
        file=weights_name,
    )
    check_config_within_limits(manifest.model.config, manifest.model.dtype, archive.entries[weights_name].size)
    check_tensors_match_config(header, manifest.model.config, manifest.model.dtype, file=weights_name)
    expected_parameters = expected_parameter_count(manifest.model.config)
    if manifest.model.parameters != expected_parameters:
        raise ManifestInvalid(
            f"model.parameters is {manifest.model.parameters:,}; the config has {expected_parameters:,}",
            file=MANIFEST_NAME,
            path="/model/parameters",
        )

    input_schema = read_task_schema(archive, INPUT_SCHEMA_NAME, limits, members.get(INPUT_SCHEMA_NAME))
    output_schema = read_task_schema(archive, OUTPUT_SCHEMA_NAME, limits, members.get(OUTPUT_SCHEMA_NAME))
    example_ids, examples = read_examples(archive, limits, input_schema, output_schema, members)
    try:
        card = bytes(archive.read(CARD_NAME)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentInvalid(f"{CARD_NAME} is not UTF-8 text: {exc}", file=CARD_NAME) from exc

    if known is not None:
        package_digest = known.package
    else:
        assert whole_digest is not None  # hashed whenever nothing was remembered
        package_digest = whole_digest.result()
    if expected_digest is not None and package_digest != expected_digest:
        raise DigestMismatch(f"{path} has {package_digest}; expected {expected_digest}", file=str(path))
    if digest_cache is not None and known is None:
        digest_cache.put(identity, VerifiedDigests(package_digest, members))
    return Package(
        path=path,
        archive=archive,
        manifest=manifest,
        digest=package_digest,
        weights_header=header,
        input_schema=input_schema,
        output_schema=output_schema,
        examples=examples,
        example_names=example_ids,
        card=card,
        signed_by=signed_by,
    )


@dataclass
class VerifyReport:
    """What ``verify_package`` checked, in order, and what it found."""

    package: Package
    checks: list[tuple[str, str]] = field(default_factory=list)
    examples: list[ExampleResult] = field(default_factory=list)
    #: names of checks that passed but prove less than a reader would assume (a signature verified only
    #: against the key the package carries itself says nothing about who signed it)
    unverified: set[str] = field(default_factory=set)


def verify_package(
    path: str | os.PathLike,
    trusted_keys: TrustedKeys | None = None,
    *,
    run_examples: bool = True,
    device: str = "cpu",
    limits: Limits | None = None,
    plugins: pluggy.PluginManager | None = None,
) -> VerifyReport:
    """Everything ``open_package`` checks, plus the codec (from ``plugins``, default the process's plugin
    manager), a full model load and the example self-test."""
    package = open_package(path, trusted_keys, limits=limits)
    m = package.manifest
    report = VerifyReport(package=package)
    report.checks.append(("structure", f"{len(package.archive.entries)} stored entries, names and sizes within limits"))
    report.checks.append(("manifest", f"format {m.format_version}, schema valid, {m.name}@{m.version}"))
    report.checks.append(("digests", f"{len(m.files)} files match their SHA-256"))
    if package.signed_by and trusted_keys is not None:
        report.checks.append(("signature", f"ed25519 by {package.signed_by[:16]}…, verified with a trusted key"))
    elif package.signed_by:
        report.checks.append(
            (
                "signature",
                f"intact, but the signer is UNVERIFIED: checked only against the key "
                f"the package carries ({package.signed_by[:16]}…), which anyone can "
                "embed; give --trusted-keys to know who signed it",
            )
        )
        report.unverified.add("signature")
    else:
        report.checks.append(("signature", "none (unsigned package): nothing says who made it"))
        report.unverified.add("signature")
    report.checks.append(
        (
            "tensors",
            f"{len(package.weights_header.tensors)} tensors match the config "
            f"({m.model.parameters:,} parameters, {m.model.dtype})",
        )
    )
    codec = package.codec(plugins)
    report.checks.append(("codec", f"{codec.name} {codec.params} fits the model"))
    if run_examples:
        model = package.load_model(device)
        report.examples = package.self_test(model, plugins=plugins)
        exact = sum(r.exact for r in report.examples)
        ruled = sum(r.valid is True for r in report.examples)
        judged = (
            f"{ruled} valid by the {codec.name!r} task's rules, {exact} equal to the recorded output"
            if codec.can_check
            else f"{exact} equal to the recorded output; the {codec.name!r} codec has no "
            "rule check, so agreement is all that is tested"
        )
        report.checks.append(("examples", f"{len(report.examples)} examples pass on {device} ({judged})"))
        wrong = [r.name for r in report.examples if r.breaks_rules]
        if wrong:  # packed before `trm pack` judged examples by the rules, or with --allow-failing-examples
            report.checks[-1] = (
                "examples",
                f"{len(report.examples)} examples agree with their recorded outputs, but "
                f"{len(wrong)} of those outputs ({', '.join(wrong)}) break the {codec.name!r} task's "
                "rules: they show only that the weights are intact, not that the model solves the task",
            )
            report.unverified.add("examples")
    return report
