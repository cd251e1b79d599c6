"""The server's signature policy: which packages it accepts at upload and loads at all.

By default a server trusts the public keys (``*.pub``) in its registry's ``keys/`` folder (the
bundled registry ships the project's keys there) or in ``--trusted-keys DIR``: a package must be
signed by one of them, at upload (``POST /v1/admin/packages``) and whenever a version is loaded
(start, activate, pin, canary). Unsigned packages and packages signed by anyone else are refused
with a typed error (``UnsignedPackage``, ``UntrustedKey``: 422 at upload; the module is not
activated at load). ``--allow-unsigned`` turns the policy off explicitly: then any package is
accepted, and a signature that is present must still verify against its embedded key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..package import DirectoryRegistry, UntrustedKey
from ..package.signing import load_trusted_keys


@dataclass(frozen=True)
class SignaturePolicy:
    """``trusted_keys``: key id → public key, or None when unsigned packages are allowed."""

    trusted_keys: dict[str, Any] | None
    keys_from: str

    @classmethod
    def build(
        cls, registry: DirectoryRegistry, trusted_keys_dir: Path | None, allow_unsigned: bool
    ) -> "SignaturePolicy":
        """The policy of a server over ``registry`` (see the module docstring)."""
        if allow_unsigned:
            return cls(None, "unsigned packages allowed (--allow-unsigned)")
        folder = trusted_keys_dir if trusted_keys_dir is not None else registry.root / "keys"
        keys = load_trusted_keys(folder) if folder.is_dir() else {}
        return cls(keys, f"{len(keys)} trusted key(s) from {folder.name}/")

    def keys_for_opening(self) -> list[Any] | None:
        """What ``open_package(trusted_keys=…)`` needs: the keys, or None when the policy is off.

        With the policy on and no key at all, nothing can be trusted: every package is refused."""
        if self.trusted_keys is not None and not self.trusted_keys:
            raise UntrustedKey(
                "this server trusts no signing key: put the signers' *.pub files in the registry's "
                "keys/ folder or --trusted-keys DIR, or start it with --allow-unsigned"
            )
        return list(self.trusted_keys.values()) if self.trusted_keys is not None else None


class PolicySource:
    """A registry as the host's module source, opening every version under the server's signature policy."""

    def __init__(self, registry: DirectoryRegistry, policy: SignaturePolicy) -> None:
        self.registry = registry
        self.policy = policy

    def __repr__(self) -> str:
        return f"PolicySource({self.registry!r}, {self.policy.keys_from})"

    def list_versions(self, name: str) -> list[str]:
        return self.registry.list_versions(name)

    def open(self, name: str, version: str) -> Any:
        return self.registry.open(name, version, trusted_keys=self.policy.keys_for_opening())
