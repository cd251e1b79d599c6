"""Package digests: hashed once per open, checked against the registry's record, remembered per file identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import trm_modules.package.open as open_module
from fixtures.packages import build_tiny_package
from trm_modules.package import DigestMismatch, open_package
from trm_modules.package.digests import DigestCache, FileIdentity, VerifiedDigests

ZERO_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("built") / "tiny.trm", name="tiny", version="1.0.0")


@pytest.fixture
def package_file(tmp_path, built) -> Path:
    path = tmp_path / "tiny.trm"
    path.write_bytes(built.read_bytes())
    return path


@pytest.fixture
def hashing(monkeypatch) -> list[str]:
    """Every SHA-256 computed while opening packages: "member" or "whole"."""
    calls: list[str] = []
    member, whole = open_module.sha256_hex, open_module.hash_in_background
    monkeypatch.setattr(open_module, "sha256_hex", lambda data: calls.append("member") or member(data))
    monkeypatch.setattr(open_module, "hash_in_background", lambda data: calls.append("whole") or whole(data))
    return calls


def test_the_package_digest_is_the_sha256_of_the_whole_file(package_file):
    import hashlib

    assert open_package(package_file).digest == "sha256:" + hashlib.sha256(package_file.read_bytes()).hexdigest()


def test_a_file_whose_digest_differs_from_the_expected_one_is_refused(package_file):
    with pytest.raises(DigestMismatch, match="expected sha256:0000"):
        open_package(package_file, expected_digest=ZERO_DIGEST)


def test_reopening_an_unchanged_file_hashes_nothing(package_file, hashing):
    cache = DigestCache(min_age_s=0)
    first = open_package(package_file, digest_cache=cache)
    assert "whole" in hashing and "member" in hashing
    hashing.clear()
    again = open_package(package_file, digest_cache=cache)
    assert hashing == [] and again.digest == first.digest and cache.hits == 1


def test_a_file_rewritten_in_place_is_hashed_again_and_refused(package_file):
    cache = DigestCache(min_age_s=0)
    digest = open_package(package_file, digest_cache=cache).digest
    stat = package_file.stat()
    data = bytearray(package_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights: same size, same names
    with open(package_file, "r+b") as fh:
        fh.write(data)
    # A rewrite within one tick of the file clock keeps mtime and ctime (why DigestCache has min_age_s);
    # one tick later they differ:
    os.utime(package_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DigestMismatch):
        open_package(package_file, digest_cache=cache, expected_digest=digest)


def test_a_file_changed_moments_ago_is_not_remembered(package_file):
    cache = DigestCache()  # default: files younger than 2 s are hashed every time (file times tick coarsely)
    open_package(package_file, digest_cache=cache)
    assert len(cache) == 0


def test_the_cache_forgets_the_least_recently_used_identity_beyond_its_bound():
    cache = DigestCache(max_entries=2, min_age_s=0)
    ids = [FileIdentity(1, inode, 10, 0, 0) for inode in range(3)]
    for identity in ids:
        cache.put(identity, VerifiedDigests(ZERO_DIGEST, {}))
    assert cache.get(ids[0]) is None and cache.get(ids[2]) is not None and len(cache) == 2
