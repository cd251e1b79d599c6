"""Directory registries: publish, resolve with semver specifiers, yank, install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.packages import build_tiny_package
from trm_modules.package import DigestMismatch, DirectoryRegistry, NoMatchingVersion, VersionExists, VersionSpecInvalid
from trm_modules.package.registry import install, installed_registry
from trm_modules.package.semver import Version, VersionSpec

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ["0.2.3", "0.2.9", "1.0.0", "1.2.0", "1.2.7", "1.3.0", "2.0.0-rc.1", "2.0.0"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("^1.2", "1.3.0"),
        ("~1.2.3", "1.2.7"),
        (">=1,<2", "1.3.0"),
        ("1.2.0", "1.2.0"),
        ("=1.0.0", "1.0.0"),
        ("^0.2.3", "0.2.9"),
        ("~1", "1.3.0"),
        ("1.2.x", "1.2.7"),
        ("*", "2.0.0"),
        (">1.2", "2.0.0"),
        ("<=1.2", "1.2.7"),
        ("<2", "1.3.0"),
        ("^3", None),
        ("0.2 || 1.0", "1.0.0"),
    ],
)
def test_version_specifiers_follow_npm_semantics(spec, expected):
    best = VersionSpec(spec).best(VERSIONS)
    assert (str(best) if best else None) == expected


def test_prerelease_matches_only_a_specifier_that_names_it():
    assert not VersionSpec(">=1.0.0").matches("2.0.0-rc.1")
    assert VersionSpec(">=2.0.0-rc.0").matches("2.0.0-rc.1")


def test_semver_precedence_orders_prereleases_before_the_release():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    assert [str(v) for v in sorted(Version.parse(v) for v in reversed(ordered))] == ordered


@pytest.mark.parametrize("bad", ["1.2.3.4", "^", ">=abc", "1.2.3 ~~"])
def test_malformed_specifier_is_a_typed_error(bad):
    with pytest.raises(VersionSpecInvalid):
        VersionSpec(bad).matches("1.0.0")


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("built")
    return {v: build_tiny_package(folder / f"m-{v}.trm", name="tiny", version=v) for v in ("1.0.0", "1.2.0", "2.0.0")}


@pytest.fixture
def registry(tmp_path, packages) -> DirectoryRegistry:
    registry = DirectoryRegistry(tmp_path / "registry", create=True)
    for path in packages.values():
        registry.publish(path)
    return registry


def test_published_versions_are_indexed_with_digest_and_size(registry, packages):
    index = json.loads(registry.index_path.read_text())
    record = index["modules"]["tiny"]["versions"]["1.2.0"]
    assert record["size"] == packages["1.2.0"].stat().st_size and record["digest"].startswith("sha256:")
    assert record["yanked"] is False
    assert registry.list_versions("tiny") == ["1.0.0", "1.2.0", "2.0.0"]


def test_publishing_a_version_twice_is_refused(registry, packages):
    with pytest.raises(VersionExists):
        registry.publish(packages["1.2.0"])


def test_resolve_picks_the_highest_matching_version(registry):
    assert registry.resolve("tiny", "^1").version == "1.2.0"
    assert registry.resolve("tiny").version == "2.0.0"


def test_yanked_version_is_skipped_by_specifiers_but_resolves_when_pinned(registry):
    registry.yank("tiny", "1.2.0", reason="wrong answers on 4x4 corners")
    assert registry.resolve("tiny", "^1").version == "1.0.0"
    assert registry.resolve("tiny", "1.2.0").yanked


def test_unknown_module_or_unmatched_specifier_is_a_typed_error(registry):
    with pytest.raises(NoMatchingVersion):
        registry.resolve("nope")
    with pytest.raises(NoMatchingVersion, match="published: 1.0.0, 1.2.0, 2.0.0"):
        registry.resolve("tiny", "^3")


def test_registry_refuses_a_file_whose_digest_differs_from_the_index(registry):
    entry = registry.resolve("tiny", "1.0.0")
    path = registry.path_of(entry)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DigestMismatch):
        registry.open("tiny", "1.0.0")


def test_install_copies_the_resolved_version_into_trm_home(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_HOME", str(tmp_path / "home"))
    entry, package = install("tiny@~1.2", source=registry)
    assert (entry.version, package.version) == ("1.2.0", "1.2.0")
    assert installed_registry().resolve("tiny").digest == package.digest
    assert (tmp_path / "home" / "modules" / entry.file).is_file()
    install("tiny@~1.2", source=registry)  # installing the same bytes again is a no-op


def test_repository_registry_index_is_a_valid_empty_or_populated_index():
    index = json.loads((REPO / "registry" / "index.json").read_text())
    assert index["format"] == 1 and isinstance(index["modules"], dict)
