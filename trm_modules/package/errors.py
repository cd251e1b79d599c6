"""Typed refusals of the package format.

Every error names the file it concerns (``file``, a name inside the archive or the package path)
and the rule it breaks (``rule``, a short stable identifier documented in ``spec/SPEC.md``), so a
user (or a registry) can act on it and a test can tell one refusal from another.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ModuleNotFound, TRMError


class PackageError(TRMError):
    """A package was refused, or an operation on a package failed.

    ``file``: the archive member (or package path) at fault, "" when it is the package as a whole.
    ``rule``: the identifier of the rule that was broken (see spec/SPEC.md, "Refusals").
    ``path``: a JSON pointer into ``file`` when the fault is inside a JSON document, else "".
    """

    rule = "package"

    def __init__(self, message: str, *, file: str = "", rule: str | None = None, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.path = path
        if rule is not None:
            self.rule = rule

    def __str__(self) -> str:
        where = self.file + (f" at {self.path}" if self.path else "")
        return f"{self.message} [{self.rule}{': ' + where if where else ''}]"


# ----------------------------------------------------------------------------- archive structure
class ArchiveError(PackageError):
    """The file is not a well-formed package archive (not a zip, truncated, inconsistent headers)."""

    rule = "archive"


class UnsafePath(ArchiveError):
    """An entry name is absolute, climbs out with ``..``, or is otherwise not a safe relative path."""

    rule = "unsafe-path"


class SymlinkEntry(ArchiveError):
    """An entry is a symbolic link (or any non-regular file) according to its zip attributes."""

    rule = "symlink"


class DuplicateEntry(ArchiveError):
    """Two entries share one name."""

    rule = "duplicate-entry"


class CompressedEntry(ArchiveError):
    """An entry is compressed or encrypted; format v1 stores every entry uncompressed."""

    rule = "compressed-entry"


class SizeLimitExceeded(ArchiveError):
    """A declared size (one entry, the total, the entry count, a header) is over the ``Limits``."""

    rule = "size-limit"


# ------------------------------------------------------------------------------- file inventory
class MissingFile(PackageError):
    """A file the format or the manifest requires is not in the archive."""

    rule = "missing-file"


class UnlistedFile(PackageError):
    """A file is in the archive but not listed in ``manifest.json`` ``files``."""

    rule = "unlisted-file"


class DigestMismatch(PackageError):
    """A file's size or SHA-256 differs from what the manifest (or a registry index) declares."""

    rule = "digest-mismatch"


# ---------------------------------------------------------------------------------- the manifest
class ManifestInvalid(PackageError):
    """``manifest.json`` is not JSON, or breaks ``spec/manifest.schema.json`` or a semantic rule."""

    rule = "manifest-schema"


class ConfigOutOfBounds(ManifestInvalid):
    """The model config is beyond sane limits, or larger than its weights could hold."""

    rule = "config-limit"


class ArchitectureUnavailable(ManifestInvalid):
    """The manifest's ``model.architecture`` is one no installed plugin provides (``architecture`` names it)."""

    rule = "architecture"

    def __init__(self, message: str, *, architecture: str, file: str = "", path: str = "") -> None:
        super().__init__(message, file=file, path=path)
        self.architecture = architecture


class UnsupportedFormatVersion(ManifestInvalid):
    """The package uses a newer major format version than this trm-modules reads."""

    rule = "format-version"


class DocumentInvalid(PackageError):
    """A JSON document in the package (task schema, example) is malformed or fails its schema."""

    rule = "document"


# ------------------------------------------------------------------------------------ signatures
class SignatureError(PackageError):
    """Base class of signature refusals."""

    rule = "signature"


class SignatureInvalid(SignatureError):
    """``signature.json`` is malformed, does not match the package, or its signature does not verify."""

    rule = "signature-invalid"


class UntrustedKey(SignatureError):
    """The package is signed, but not by any of the trusted keys."""

    rule = "untrusted-key"


class UnsignedPackage(SignatureError):
    """Trusted keys were required but the package carries no ``signature.json``."""

    rule = "unsigned"


class KeyFileInvalid(SignatureError):
    """A key file could not be read (wrong format, not ed25519)."""

    rule = "key"


# --------------------------------------------------------------------------------------- weights
class WeightsInvalid(PackageError):
    """The safetensors file is malformed: header length, JSON, dtypes, shapes or offsets are wrong."""

    rule = "weights-header"


class TensorMismatch(WeightsInvalid):
    """Tensor names, shapes or dtypes differ from what the manifest's model config requires."""

    rule = "tensor-mismatch"


# --------------------------------------------------------------------------------- behaviour
class NoCodec(PackageError):
    """No plugin of the plugin manager in use provides the task codec the manifest names."""

    rule = "no-codec"


class SelfTestFailed(PackageError):
    """The model's answer to a shipped example differs from the example's output (or cannot be decoded).

    ``index``, ``expected`` and ``got``: which example, its output, and the model's answer.
    """

    rule = "self-test"

    def __init__(
        self, message: str, *, file: str = "", path: str = "", index: int = -1, expected: Any = None, got: Any = None
    ) -> None:
        super().__init__(message, file=file, path=path)
        self.index = index
        self.expected = expected
        self.got = got

    @classmethod
    def raise_for(cls, results: Sequence[Any], examples: Sequence[tuple[Any, Any]], label: str = "") -> None:
        """Raise for the first failed result of a self-test (``trm_modules.solving.grade_examples``), if any."""
        for index, result in enumerate(results):
            if result.passed:
                continue
            where = f"{label}: " if label else ""
            file = f"examples/{result.name}.output.json"
            if result.problem is not None:
                raise cls(
                    f"{where}example {result.name}: {result.problem.message}",
                    file=file,
                    path=result.problem.path,
                    index=index,
                    expected=examples[index][1],
                )
            raise cls(
                f"{where}example {result.name}: the model's answer {result.output!r} differs from the expected "
                f"output {examples[index][1]!r} and the codec does not accept it (weights damaged, or a "
                "numerically different device/dtype)",
                file=file,
                index=index,
                expected=examples[index][1],
                got=result.output,
            )


class BuildError(PackageError):
    """A package could not be built from the given model, codec and metadata."""

    rule = "build"


# -------------------------------------------------------------------------------------- registry
class RegistryError(PackageError):
    """A registry is malformed, or an operation on it is not allowed."""

    rule = "registry"


class VersionExists(RegistryError):
    """Publishing would overwrite a version that is already in the registry."""

    rule = "version-exists"


class VersionSpecInvalid(RegistryError, ValueError):
    """A version or version specifier is not valid semver syntax."""

    rule = "version-spec"


class NoMatchingVersion(RegistryError, ModuleNotFound):
    """No published, non-yanked version of a module matches the requested specifier."""

    rule = "no-matching-version"
