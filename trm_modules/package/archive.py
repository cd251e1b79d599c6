"""The package container: a zip archive of STORED entries, read safely and written reproducibly.

Reading never extracts anything to disk and never trusts a declared size: every entry is checked
(name, type, compression, size, position) from the central directory and its local header
*before* a byte of its content is looked at, so a zip bomb, a path traversal or a symlink is
refused up front. Content is served as zero-copy ``memoryview`` slices of the archive bytes.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    ArchiveError,
    BuildError,
    CompressedEntry,
    DuplicateEntry,
    SizeLimitExceeded,
    SymlinkEntry,
    UnsafePath,
)

GiB = 1 << 30
MiB = 1 << 20

#: Every entry of a written package carries this timestamp, so equal inputs give equal bytes.
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
#: Unix attributes of a written entry: a regular file, rw-r--r--.
REGULAR_FILE_ATTRIBUTES = (stat.S_IFREG | 0o644) << 16

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature … file name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 255
MAX_NAME_DEPTH = 8


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied while opening a package; all sizes in bytes.

    The defaults admit the largest packages this project ships (an ARC model with a pruned
    puzzle table) with room to spare, and refuse anything that would exhaust a small host.
    """

    max_package_bytes: int = 8 * GiB
    max_file_bytes: int = 4 * GiB
    max_total_bytes: int = 8 * GiB
    max_entries: int = 4096
    max_json_bytes: int = 16 * MiB
    max_safetensors_header_bytes: int = 16 * MiB
    max_tensors: int = 10_000


@dataclass(frozen=True)
class Entry:
    """One member of the archive: its name and where its (uncompressed) bytes lie."""

    name: str
    offset: int
    size: int
    crc: int


def check_entry_name(name: str) -> str | None:
    """Why ``name`` is not a safe relative POSIX path for a package member, or None if it is."""
    if not name:
        return "the name is empty"
    if "\x00" in name:
        return "the name contains a NUL byte"
    if "\\" in name:
        return "the name contains a backslash (only '/' separates folders)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "the name is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "the name climbs out of the package with '..'"
    if name.endswith("/"):
        return "the entry is a directory (packages hold files only)"
    if len(name) > MAX_NAME_LENGTH or len(parts) > MAX_NAME_DEPTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters or deeper than {MAX_NAME_DEPTH} folders"
    for part in parts:
        if not _SAFE_COMPONENT.match(part):
            return (
                f"the path component {part!r} is not allowed (letters, digits, '.', '_', '-'; "
                "not starting with '.' or '-')"
            )
    return None


class Archive:
    """A package archive held in memory, with every entry validated against ``Limits``."""

    def __init__(self, data: bytes, entries: dict[str, Entry], source: str) -> None:
        self.data = data
        self.entries = entries
        self.source = source
        self._view = memoryview(data)

    @property
    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def read(self, name: str) -> memoryview:
        """The bytes of member ``name`` (a zero-copy view into the archive)."""
        entry = self.entries[name]
        return self._view[entry.offset : entry.offset + entry.size]


def read_archive(data: bytes, limits: Limits, source: str = "") -> Archive:
    """Parse and validate the zip structure of ``data``; raise a typed ``ArchiveError`` on any fault."""
    if len(data) > limits.max_package_bytes:
        raise SizeLimitExceeded(
            f"the package is {len(data):,} bytes, over the limit of {limits.max_package_bytes:,}", file=source
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            central_directory_start = getattr(zf, "start_dir", len(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error, OSError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}", file=source) from exc
    except Exception as exc:  # zipfile raises assorted errors on crafted central directories
        raise ArchiveError(f"not a readable zip archive: {type(exc).__name__}: {exc}", file=source) from exc

    if len(infos) > limits.max_entries:
        raise SizeLimitExceeded(
            f"the archive declares {len(infos)} entries, over the limit of {limits.max_entries}", file=source
        )
    # First pass: everything the central directory declares, before touching any content.
    total = 0
    seen: set[str] = set()
    for info in infos:
        name = info.orig_filename
        problem = check_entry_name(name)
        if problem is not None:
            raise UnsafePath(f"unsafe entry name {name!r}: {problem}", file=name)
        if name in seen:
            raise DuplicateEntry(f"the archive holds more than one entry named {name!r}", file=name)
        seen.add(name)
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else f"not a regular file (mode {oct(mode)})"
            raise SymlinkEntry(f"entry {name!r} is {kind}", file=name)
        if info.flag_bits & 0x1:
            raise CompressedEntry(
                f"entry {name!r} is encrypted; entries must be stored in the clear", file=name, rule="encrypted-entry"
            )
        if info.compress_type != zipfile.ZIP_STORED:
            raise CompressedEntry(
                f"entry {name!r} uses compression method {info.compress_type}; format v1 requires "
                "every entry STORED (method 0)",
                file=name,
            )
        if info.file_size > limits.max_file_bytes:
            raise SizeLimitExceeded(
                f"entry {name!r} declares {info.file_size:,} bytes, over the per-file limit of "
                f"{limits.max_file_bytes:,}",
                file=name,
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise SizeLimitExceeded(
                f"the entries declare more than {limits.max_total_bytes:,} bytes in total (limit)", file=name
            )
        if info.compress_size != info.file_size:
            raise ArchiveError(
                f"entry {name!r} is stored but its sizes disagree ({info.compress_size} stored, "
                f"{info.file_size} declared)",
                file=name,
            )

    # Second pass: local headers, so the content range of each entry is known and in bounds.
    entries: dict[str, Entry] = {}
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        name = info.orig_filename
        start = info.header_offset
        if start < 0 or start + _LOCAL_HEADER.size > len(data):
            raise ArchiveError(f"the local header of {name!r} lies outside the file", file=name)
        fields = _LOCAL_HEADER.unpack_from(data, start)
        if fields[0] != _LOCAL_SIGNATURE:
            raise ArchiveError(f"the local header of {name!r} has a bad signature", file=name)
        name_length, extra_length = fields[-2], fields[-1]
        local_name = data[start + _LOCAL_HEADER.size : start + _LOCAL_HEADER.size + name_length]
        if local_name != name.encode("utf-8") and local_name.decode("cp437", "replace") != name:
            raise ArchiveError(f"the local header names {local_name!r}, the central directory {name!r}", file=name)
        offset = start + _LOCAL_HEADER.size + name_length + extra_length
        end = offset + info.file_size
        if end > min(len(data), central_directory_start):
            raise ArchiveError(f"entry {name!r} runs past the end of the archive data (truncated file?)", file=name)
        spans.append((start, end, name))
        entries[name] = Entry(name=name, offset=offset, size=info.file_size, crc=info.CRC)
    spans.sort()
    for (_, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if end > next_start:
            raise ArchiveError(
                f"entries {name!r} and {next_name!r} overlap", file=next_name, rule="overlapping-entries"
            )
    return Archive(data, entries, source)


def write_archive(files: dict[str, bytes], out_path: str | os.PathLike) -> Path:
    """Write ``files`` (name → content) as a reproducible package archive, atomically.

    Entries are STORED, sorted by name, with a fixed timestamp and fixed attributes, so the
    same files always give the same bytes (and the same package digest).
    """
    out_path = Path(out_path)
    for name in files:
        problem = check_entry_name(name)
        if problem is not None:
            raise BuildError(f"cannot write entry {name!r}: {problem}", file=name)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".trm", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3
                info.external_attr = REGULAR_FILE_ATTRIBUTES
                zf.writestr(info, bytes(files[name]))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path
