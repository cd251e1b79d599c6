"""Hostile packages: each is refused with its own typed error, before anything in it is used."""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors

from fixtures.packages import (
    build_tiny_package,
    manifest_of,
    read_members,
    redigest,
    rewrite_safetensors_header,
    tiny_model,
    with_manifest,
    write_members,
)
from trm_modules.package import (
    ArchiveError,
    CompressedEntry,
    DigestMismatch,
    DuplicateEntry,
    Limits,
    ManifestInvalid,
    MissingFile,
    PackageError,
    SignatureInvalid,
    SizeLimitExceeded,
    SymlinkEntry,
    TensorMismatch,
    UnlistedFile,
    UnsafePath,
    UnsignedPackage,
    UnsupportedFormatVersion,
    UntrustedKey,
    WeightsInvalid,
    generate_keypair,
    open_package,
    sign_package,
)


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("valid") / "valid.trm")


@pytest.fixture(scope="module")
def members(valid) -> dict[str, bytes]:
    return read_members(valid)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    """(folder holding the signer's key pair, folder holding someone else's public key)."""
    base = tmp_path_factory.mktemp("keys")
    generate_keypair(base / "signer")
    generate_keypair(base / "stranger")
    (base / "stranger" / "trm-signing.key").unlink()
    return base / "signer", base / "stranger"


@pytest.fixture(scope="module")
def signed(valid, keys, tmp_path_factory) -> Path:
    return sign_package(valid, keys[0] / "trm-signing.key", tmp_path_factory.mktemp("signed") / "signed.trm")


def assert_refused(path: Path, error: type[PackageError], **kwargs) -> PackageError:
    with pytest.raises(error) as refusal:
        open_package(path, **kwargs)
    assert refusal.value.message and refusal.value.rule
    return refusal.value


# --------------------------------------------------------------------------------- container
def test_entry_name_climbing_out_with_dotdot_is_refused(members, tmp_path):
    error = assert_refused(write_members(tmp_path / "p.trm", {**members, "../evil.txt": b"x"}), UnsafePath)
    assert error.file == "../evil.txt"


def test_absolute_entry_name_is_refused(members, tmp_path):
    assert_refused(write_members(tmp_path / "p.trm", {**members, "/etc/evil": b"x"}), UnsafePath)


def test_backslash_entry_name_is_refused(members, tmp_path):
    assert_refused(write_members(tmp_path / "p.trm", {**members, "..\\evil": b"x"}), UnsafePath)


def test_symlink_entry_is_refused(members, tmp_path):
    link = zipfile.ZipInfo("examples/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = write_members(tmp_path / "p.trm", list(members.items()) + [(link, b"/etc/passwd")])
    assert assert_refused(path, SymlinkEntry).file == "examples/link"


def test_declared_size_over_the_limit_is_refused_before_reading(valid, tmp_path):
    data = bytearray(valid.read_bytes())
    central = data.index(b"PK\x01\x02")  # first central-directory record
    struct.pack_into("<LL", data, central + 20, 0xFFFFFFF0, 0xFFFFFFF0)  # compressed, uncompressed size: ~4 GiB
    path = tmp_path / "bomb.trm"
    path.write_bytes(bytes(data))
    assert_refused(path, SizeLimitExceeded, limits=Limits(max_file_bytes=2**30))


def test_total_size_over_the_configured_limit_is_refused(valid):
    error = assert_refused(valid, SizeLimitExceeded, limits=Limits(max_total_bytes=10_000))
    assert "limit" in error.message


def test_compressed_entry_is_refused(members, tmp_path):
    path = write_members(tmp_path / "p.trm", members, compression=zipfile.ZIP_DEFLATED)
    assert_refused(path, CompressedEntry)


def test_duplicate_entry_names_are_refused(members, tmp_path):
    items = list(members.items()) + [("README.md", b"second copy")]
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate
        path = write_members(tmp_path / "p.trm", items)
    assert assert_refused(path, DuplicateEntry).file == "README.md"


def test_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "p.trm"
    path.write_bytes(b"this is not a zip archive at all" * 10)
    assert_refused(path, ArchiveError)


def test_truncated_archive_is_refused(valid, tmp_path):
    path = tmp_path / "p.trm"
    path.write_bytes(valid.read_bytes()[: len(valid.read_bytes()) // 2])
    assert_refused(path, ArchiveError)


# --------------------------------------------------------------------------------- inventory
def test_changed_file_fails_its_digest(members, tmp_path):
    changed = {**members, "README.md": members["README.md"] + b"\nan added line\n"}
    assert assert_refused(write_members(tmp_path / "p.trm", changed), DigestMismatch).file == "README.md"


def test_file_not_listed_in_the_manifest_is_refused(members, tmp_path):
    path = write_members(tmp_path / "p.trm", {**members, "extra.txt": b"smuggled"})
    assert assert_refused(path, UnlistedFile).file == "extra.txt"


def test_listed_file_missing_from_the_archive_is_refused(members, tmp_path):
    path = write_members(tmp_path / "p.trm", {k: v for k, v in members.items() if k != "README.md"})
    assert assert_refused(path, MissingFile).file == "README.md"


# -------------------------------------------------------------------------------- signatures
def test_tampered_signature_is_refused(signed, tmp_path):
    members = read_members(signed)
    signature = json.loads(members["signature.json"])
    sig = signature["dsseEnvelope"]["signatures"][0]["sig"]
    signature["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    path = write_members(tmp_path / "p.trm", {**members, "signature.json": json.dumps(signature).encode()})
    assert_refused(path, SignatureInvalid)


def test_manifest_changed_after_signing_is_refused(signed, tmp_path):
    members = read_members(signed)
    manifest = manifest_of(members)
    manifest["description"] = "quietly changed after signing"
    assert_refused(write_members(tmp_path / "p.trm", with_manifest(members, manifest)), SignatureInvalid)


def test_signature_by_an_untrusted_key_is_refused(signed, keys):
    assert_refused(signed, UntrustedKey, trusted_keys=keys[1])


def test_unsigned_package_is_refused_when_keys_are_trusted(valid, keys):
    assert_refused(valid, UnsignedPackage, trusted_keys=keys[0])


# ---------------------------------------------------------------------------------- manifest
@pytest.mark.parametrize(
    "change, pointer",
    [
        (lambda m: m.update(name="Sudoku_4x4"), "/name"),
        (lambda m: m.pop("license"), ""),
        (lambda m: m.update(license="MIT OR"), "/license"),
        (lambda m: m.update(version="1.0"), "/version"),
        (lambda m: m.update(module_id="not an iri"), "/module_id"),
        (lambda m: m["files"][0].update(sha256="XYZ"), "/files/0/sha256"),
        (lambda m: m["model"]["config"].update(hidden_size=-4), "/model/config/hidden_size"),
        (lambda m: m["model"].update(parameters=12), "/model/parameters"),
    ],
    ids=[
        "uppercase-name",
        "missing-license",
        "non-spdx-license",
        "non-semver-version",
        "bad-module-id",
        "bad-digest-syntax",
        "negative-hidden-size",
        "parameter-count-lie",
    ],
)
def test_manifest_schema_violation_is_refused(members, tmp_path, change, pointer):
    manifest = manifest_of(members)
    change(manifest)
    error = assert_refused(write_members(tmp_path / "p.trm", with_manifest(members, manifest)), ManifestInvalid)
    assert error.file == "manifest.json" and error.path == pointer


def test_newer_major_format_is_refused_naming_the_release_that_reads_it(members, tmp_path):
    manifest = manifest_of(members)
    manifest["format_version"] = "2.0"
    manifest["runtime"]["min_trm_modules"] = "3.1.0"
    error = assert_refused(
        write_members(tmp_path / "p.trm", with_manifest(members, manifest)), UnsupportedFormatVersion
    )
    assert "3.1.0" in error.message


# ----------------------------------------------------------------------------------- weights
def _with_weights(members: dict[str, bytes], weights: bytes) -> dict[str, bytes]:
    return redigest({**members, "weights.safetensors": weights})


def test_safetensors_header_length_past_end_of_file_is_refused(members, tmp_path):
    weights = members["weights.safetensors"]
    lie = struct.pack("<Q", len(weights)) + weights[8:]
    error = assert_refused(write_members(tmp_path / "p.trm", _with_weights(members, lie)), WeightsInvalid)
    assert error.rule == "weights-header-length"


def test_safetensors_overlapping_offsets_are_refused(members, tmp_path):
    def overlap(header):
        header["L_init"]["data_offsets"] = header["H_init"]["data_offsets"]

    weights = rewrite_safetensors_header(members["weights.safetensors"], overlap)
    error = assert_refused(write_members(tmp_path / "p.trm", _with_weights(members, weights)), WeightsInvalid)
    assert error.rule == "weights-offsets"


def test_safetensors_offsets_out_of_range_are_refused(members, tmp_path):
    def beyond(header):
        begin, end = header["H_init"]["data_offsets"]
        header["H_init"]["data_offsets"] = [begin + 10**9, end + 10**9]

    weights = rewrite_safetensors_header(members["weights.safetensors"], beyond)
    error = assert_refused(write_members(tmp_path / "p.trm", _with_weights(members, weights)), WeightsInvalid)
    assert error.rule == "weights-offsets"


def test_tensor_shape_that_differs_from_the_config_is_refused(members, tmp_path):
    state = {k: v.contiguous() for k, v in tiny_model().state_dict().items()}
    state["lm_head.weight"] = state["lm_head.weight"].reshape(32, 6).contiguous()  # same bytes, other shape
    error = assert_refused(
        write_members(tmp_path / "p.trm", _with_weights(members, save_safetensors(state))), TensorMismatch
    )
    assert "lm_head.weight" in error.message


def test_tensor_dtype_that_differs_from_the_manifest_is_refused(members, tmp_path):
    state = {k: v.to(torch.float16).contiguous() for k, v in tiny_model().state_dict().items()}
    error = assert_refused(
        write_members(tmp_path / "p.trm", _with_weights(members, save_safetensors(state))), TensorMismatch
    )
    assert "F16" in error.message


def test_pickle_renamed_safetensors_is_refused_without_unpickling(members, tmp_path):
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    error = assert_refused(
        write_members(tmp_path / "p.trm", _with_weights(members, pickle.dumps(Payload()))), WeightsInvalid
    )
    assert error.file == "weights.safetensors"
    assert not marker.exists()


def test_torch_save_zip_renamed_safetensors_is_refused(members, tmp_path):
    import io

    buffer = io.BytesIO()
    torch.save(tiny_model().state_dict(), buffer)
    assert_refused(write_members(tmp_path / "p.trm", _with_weights(members, buffer.getvalue())), WeightsInvalid)


# ------------------------------------------------------------------------------------ process
def test_cli_reports_a_hostile_package_and_exits_nonzero(members, tmp_path):
    from typer.testing import CliRunner

    from trm_modules.cli import app

    path = write_members(tmp_path / "p.trm", {**members, "../evil.txt": b"x"})
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 1
    assert "UnsafePath" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback, a clean exit
