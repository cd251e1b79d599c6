"""The package format (spec/SPEC.md): manifest models, pack / open / verify / sign, the registry.

from trm_modules.package import open_package, build_package, PackageError
pkg = open_package("sudoku-4x4-1.0.0.trm")
model = pkg.load_model("cpu")
pkg.self_test(model)
"""

from .archive import Limits
from .build import build_package, sign_package
from .errors import (
    ArchiveError,
    BuildError,
    CompressedEntry,
    DigestMismatch,
    DocumentInvalid,
    DuplicateEntry,
    KeyFileInvalid,
    ArchitectureUnavailable,
    ConfigOutOfBounds,
    ManifestInvalid,
    MissingFile,
    NoCodec,
    NoMatchingVersion,
    PackageError,
    RegistryError,
    SelfTestFailed,
    SignatureError,
    SignatureInvalid,
    SizeLimitExceeded,
    SymlinkEntry,
    TensorMismatch,
    UnlistedFile,
    UnsafePath,
    UnsignedPackage,
    UnsupportedFormatVersion,
    UntrustedKey,
    VersionExists,
    VersionSpecInvalid,
    WeightsInvalid,
)
from ..solving import ExampleResult
from .loaded import Package
from .manifest import FORMAT_VERSION, Manifest, NewerFormatWarning
from .open import VerifyReport, open_package, verify_package
from .registry import (
    DirectoryRegistry,
    RegistryEntry,
    default_registry,
    find_package,
    install,
    installed_registry,
    locate_package,
)
from .semver import Version, VersionSpec
from .signing import generate_keypair, load_private_key, load_public_key, load_trusted_keys

__all__ = [
    "open_package",
    "verify_package",
    "build_package",
    "sign_package",
    "Package",
    "Manifest",
    "Limits",
    "VerifyReport",
    "ExampleResult",
    "FORMAT_VERSION",
    "NewerFormatWarning",
    "DirectoryRegistry",
    "RegistryEntry",
    "default_registry",
    "installed_registry",
    "install",
    "find_package",
    "locate_package",
    "Version",
    "VersionSpec",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "PackageError",
    "ArchiveError",
    "UnsafePath",
    "SymlinkEntry",
    "DuplicateEntry",
    "CompressedEntry",
    "SizeLimitExceeded",
    "MissingFile",
    "UnlistedFile",
    "DigestMismatch",
    "ManifestInvalid",
    "ArchitectureUnavailable",
    "ConfigOutOfBounds",
    "UnsupportedFormatVersion",
    "DocumentInvalid",
    "SignatureError",
    "SignatureInvalid",
    "UntrustedKey",
    "UnsignedPackage",
    "KeyFileInvalid",
    "WeightsInvalid",
    "TensorMismatch",
    "SelfTestFailed",
    "BuildError",
    "RegistryError",
    "VersionExists",
    "VersionSpecInvalid",
    "NoMatchingVersion",
    "NoCodec",
]
