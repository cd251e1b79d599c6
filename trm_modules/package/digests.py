"""SHA-256 of package bytes: hashed off the calling thread, and remembered per file identity.

Opening a package needs two digests over (almost) the same bytes: each member's, checked against
the manifest, and the whole file's, the package's identity. ``hash_in_background`` computes the
whole-file one on a worker thread (``hashlib`` releases the GIL on large buffers) while the caller
hashes the members and checks everything else, so the two passes cost one pass of wall time on
any machine with a second core.

A registry's files never change once published, and a host opens the same file again and again
(listing a folder, swapping back to an old version). ``DigestCache`` remembers the digests that
were verified for a file, keyed by its identity as ``fstat`` reports it on the open descriptor —
device, inode, size, modification and status-change times. Rewriting a file in place changes its
mtime and ctime, replacing it changes the inode, and ctime cannot be set back by a user, so a file
whose identity is unchanged holds the bytes that were verified. File times tick coarsely (a few
milliseconds), so, as git does with "racily clean" index entries, a file changed less than
``min_age_s`` ago is not remembered: a second write within the same tick would go unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

_hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="trm-sha256")


@dataclass(frozen=True)
class FileIdentity:
    """What identifies one version of a file's content (``os.fstat`` of its open descriptor)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileIdentity":
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass(frozen=True)
class VerifiedDigests:
    """Digests checked when a package file was opened: the whole file's and each member's."""

    package: str  # "sha256:<hex>" of the file
    members: dict[str, str]  # member path -> sha256 hex, as the manifest declares and the bytes matched


def sha256_hex(data: bytes | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def hash_in_background(data: bytes | memoryview) -> "Future[str]":
    """Start hashing ``data`` on a worker thread; the future resolves to ``"sha256:<hex>"``."""
    return _hashing.submit(lambda: "sha256:" + sha256_hex(data))


class DigestCache:
    """Verified digests by file identity, least recently used dropped beyond ``max_entries``. Thread-safe.

    ``min_age_s``: files whose status changed more recently than this are not remembered (see above).
    """

    def __init__(self, max_entries: int = 1024, min_age_s: float = 2.0) -> None:
        self.max_entries = max_entries
        self.min_age_s = min_age_s
        self._entries: OrderedDict[FileIdentity, VerifiedDigests] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identity: FileIdentity) -> VerifiedDigests | None:
        """The digests verified for this identity, or None."""
        with self._lock:
            found = self._entries.get(identity)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(identity)
            return found

    def put(self, identity: FileIdentity, digests: VerifiedDigests) -> None:
        """Remember ``digests`` as verified for ``identity`` (unless the file changed too recently)."""
        if time.time_ns() - identity.ctime_ns < self.min_age_s * 1e9:
            return
        with self._lock:
            self._entries[identity] = digests
            self._entries.move_to_end(identity)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: The cache registries and folder sources share: their files are published once and never rewritten.
REGISTRY_DIGESTS = DigestCache()
