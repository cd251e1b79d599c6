"""Semantic versions (semver 2.0.0) and npm-style range specifiers, for resolving ``NAME@SPEC``.

Supported specifiers: exact (``1.2.3``, ``=1.2.3``), partial (``1.2`` = ``1.2.x``), wildcards
(``*``, ``1.x``), caret (``^1.2`` → ``>=1.2.0 <2.0.0``; ``^0.2.3`` → ``<0.3.0``; ``^0.0.3`` →
``<0.0.4``), tilde (``~1.2.3`` → ``>=1.2.3 <1.3.0``; ``~1`` → ``<2.0.0``), comparators
(``>=1,<2``, ``>1.2`` meaning ``>=1.3.0``), comparator sets joined by ``,`` or spaces, and
alternatives joined by ``||``. As in npm, a pre-release only matches a set that names a
pre-release of the same major.minor.patch.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable

from .errors import VersionSpecInvalid

_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*])(?:\.(\d+|[xX*])(?:-([0-9A-Za-z.-]+))?)?)?(?:\+[0-9A-Za-z.-]+)?$")
_COMPARATOR = re.compile(r"^(\^|~|>=|<=|>|<|=)?\s*(.*)$")


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A semver 2.0.0 version; ordering follows semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> "Version":
        """Parse ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``; raise ``VersionSpecInvalid`` otherwise."""
        match = _VERSION.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise VersionSpecInvalid(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])")
        major, minor, patch, pre, build = match.groups()
        return cls(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else (), build or "")

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        return text + (f"+{self.build}" if self.build else "")

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        if not self.prerelease:
            return (self.release, 1, ())
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.release, 0, ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()


def precedence(text: str) -> tuple[int, Version | str]:
    """A sort key ordering version strings by semver precedence (``2.0.0-rc.1`` before ``2.0.0``);
    strings that are not semantic versions sort before every version, among themselves as text."""
    try:
        return (1, Version.parse(text))
    except VersionSpecInvalid:
        return (0, text)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """``versions`` oldest first, by semver precedence (see ``precedence``)."""
    return sorted(versions, key=precedence)


@dataclass(frozen=True)
class Comparator:
    op: str  # one of >=, >, <, <=, =
    version: Version

    def matches(self, version: Version) -> bool:
        if self.op == "=":
            return version == self.version
        if self.op == ">=":
            return version >= self.version
        if self.op == ">":
            return version > self.version
        if self.op == "<":
            return version < self.version
        return version <= self.version


def _parse_partial(text: str, spec: str) -> tuple[list[int | None], tuple[str, ...]]:
    match = _PARTIAL.match(text)
    if match is None:
        raise VersionSpecInvalid(f"{text!r} in {spec!r} is not a version or partial version")
    numbers: list[int | None] = []
    for part in match.groups()[:3]:
        if part is None or part in "xX*":
            break
        numbers.append(int(part))
    pre = tuple(match.group(4).split(".")) if match.group(4) and len(numbers) == 3 else ()
    return numbers + [None] * (3 - len(numbers)), pre


def _desugar(op: str, text: str, spec: str) -> list[Comparator]:
    (major, minor, patch), pre = _parse_partial(text, spec)
    lowest = Version(major or 0, minor or 0, patch or 0, pre)
    if major is None:  # '*', 'x'
        return [] if op in ("", "=", ">=", "<=", "^", "~") else [Comparator("<", Version(0, 0, 0))]
    # The first version above the range a partial version names (1.2 → 1.3.0, 1 → 2.0.0).
    if minor is None:
        above = Version(major + 1, 0, 0)
    elif patch is None:
        above = Version(major, minor + 1, 0)
    else:
        above = None
    if op == "^":
        if major > 0 or minor is None:
            upper = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            upper = Version(0, minor + 1, 0)
        else:
            upper = Version(0, 0, patch + 1)
        return [Comparator(">=", lowest), Comparator("<", upper)]
    if op == "~":
        upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [Comparator(">=", lowest), Comparator("<", upper)]
    if op in ("", "="):
        return [Comparator("=", lowest)] if above is None else [Comparator(">=", lowest), Comparator("<", above)]
    if op == ">=":
        return [Comparator(">=", lowest)]
    if op == ">":
        return [Comparator(">", lowest)] if above is None else [Comparator(">=", above)]
    if op == "<":
        return [Comparator("<", lowest)]
    return [Comparator("<=", lowest)] if above is None else [Comparator("<", above)]  # "<="


class VersionSpec:
    """A version range: alternatives (``||``) of comparator sets that must all hold."""

    def __init__(self, text: str) -> None:
        self.text = text.strip() if isinstance(text, str) else text
        if not isinstance(text, str):
            raise VersionSpecInvalid(f"a version specifier must be a string, got {text!r}")
        self.alternatives: list[list[Comparator]] = []
        for alternative in self.text.split("||"):
            comparators: list[Comparator] = []
            tokens = re.findall(r"(?:\^|~|>=|<=|>|<|=)?\s*[^\s,^~<>=]+", alternative.replace(",", " "))
            leftover = re.sub(r"(?:\^|~|>=|<=|>|<|=)?\s*[^\s,^~<>=]+", "", alternative.replace(",", " ")).strip()
            if leftover:
                raise VersionSpecInvalid(f"cannot parse {leftover!r} in version specifier {text!r}")
            for token in tokens:
                token = token.strip()
                if token.lower() == "latest":
                    continue
                match = _COMPARATOR.match(token)
                assert match is not None  # the pattern accepts every token
                op, rest = match.group(1) or "", match.group(2).strip()
                comparators += _desugar(op, rest, text)
            self.alternatives.append(comparators)

    def __repr__(self) -> str:
        return f"VersionSpec({self.text!r})"

    def matches(self, version: Version | str) -> bool:
        """Does ``version`` satisfy this specifier?"""
        if isinstance(version, str):
            version = Version.parse(version)
        for comparators in self.alternatives:
            if not all(c.matches(version) for c in comparators):
                continue
            if version.prerelease and not any(
                c.version.prerelease and c.version.release == version.release for c in comparators
            ):
                continue
            return True
        return False

    def best(self, versions: Iterable[Version | str]) -> Version | None:
        """The highest of ``versions`` that matches, or None."""
        parsed = [Version.parse(v) if isinstance(v, str) else v for v in versions]
        matching = [v for v in parsed if self.matches(v)]
        return max(matching) if matching else None
