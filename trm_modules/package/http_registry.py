"""A registry read over HTTP: the same layout as ``DirectoryRegistry``, served by ``trm serve`` under
``/registry/`` or by any static web server or object store (``index.json`` + ``packages/…``).

Everything that arrives is untrusted: the index is parsed and checked like a local one, a file path
it names must be a safe relative path under the registry, and a downloaded package must have the
size and SHA-256 the index records before it is opened (and then passes every check of
``open_package``, signature policy included). Downloads are cached by digest under ``cache_dir``
and resumable: an interrupted download leaves ``<digest>.part``, and the next attempt asks for the
rest with an HTTP ``Range`` request (a server that ignores it sends the whole file again).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .archive import Limits, check_entry_name
from .digests import REGISTRY_DIGESTS
from .errors import DigestMismatch, NoMatchingVersion, RegistryError, SizeLimitExceeded
from .loaded import Package
from .open import open_package
from .registry import DirectoryRegistry, RegistryEntry
from .signing import TrustedKeys

_CHUNK = 1 << 20
MAX_INDEX_BYTES = 16 << 20


class HttpRegistry(DirectoryRegistry):
    """A read-only registry at ``url`` (``https://host/registry``), its downloads cached in ``cache_dir``.

    ``headers``: sent with every request (``{"Authorization": "Bearer …"}`` for ``trm serve``).
    ``client``: an ``httpx.Client`` to use instead of a new one (tests, proxies, custom TLS).
    """

    def __init__(
        self,
        url: str,
        cache_dir: str | os.PathLike,
        *,
        headers: dict[str, str] | None = None,
        client: httpx.Client | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.root = Path(cache_dir)  # where its files live on this machine: the download cache
        self.index_path = self.root / "index.json"
        self.cache_dir = self.root
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=True)
        self._headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"HttpRegistry({self.url!r})"

    # ------------------------------------------------------------------------------- reading
    def read_index(self) -> dict[str, Any]:
        """The remote ``index.json``, parsed and checked like a local index."""
        url = f"{self.url}/index.json"
        try:
            response = self._client.get(url, headers=self._headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach registry {self.url}: {exc}", file=url) from exc
        if response.status_code != 200:
            raise RegistryError(f"GET {url} answered {response.status_code}; expected the registry index", file=url)
        if len(response.content) > MAX_INDEX_BYTES:
            raise SizeLimitExceeded(f"{url} is {len(response.content):,} bytes, over {MAX_INDEX_BYTES:,}", file=url)
        try:
            index = json.loads(response.content)
        except ValueError as exc:
            raise RegistryError(f"{url} is not JSON: {exc}", file=url) from exc
        if not isinstance(index, dict) or index.get("format") != 1 or not isinstance(index.get("modules"), dict):
            raise RegistryError(
                f'{url} is not a format-1 registry index ({{"format": 1, "modules": {{...}}}})', file=url
            )
        return index

    def resolve(self, name: str, spec: str | None = None, *, include_yanked: bool = False) -> RegistryEntry:
        """As ``DirectoryRegistry.resolve``, over the remote index (messages name the URL)."""
        try:
            return super().resolve(name, spec, include_yanked=include_yanked)
        except NoMatchingVersion as exc:
            raise NoMatchingVersion(exc.message.replace(str(self.root), self.url), file=self.url) from None

    def file_url(self, entry: RegistryEntry) -> str:
        """The URL of ``entry``'s file, refused if the index names anything but a safe relative path."""
        problem = check_entry_name(entry.file)
        if problem is not None:
            raise RegistryError(
                f"the index of {self.url} names an unsafe file for {entry.name}@{entry.version}: "
                f"{entry.file!r} ({problem})",
                file=f"{self.url}/index.json",
            )
        return f"{self.url}/{quote(entry.file)}"

    def path_of(self, entry: RegistryEntry) -> Path:
        """The verified local copy of ``entry`` (downloaded, or resumed, on first use)."""
        return self.download(entry)

    def download(self, entry: RegistryEntry) -> Path:
        """Download ``entry`` into the cache (resuming a partial download) and check its size and digest."""
        if not entry.digest.startswith("sha256:") or len(entry.digest) != 71:
            raise RegistryError(f"{entry.name}@{entry.version}: the index records no sha256 digest", file=self.url)
        hex_digest = entry.digest.removeprefix("sha256:")
        final = self.cache_dir / f"{hex_digest}.trm"
        if final.is_file() and final.stat().st_size == entry.size:
            return final  # verified when it was stored here; open_package checks the digest again
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        part = self.cache_dir / f"{hex_digest}.part"
        offset = part.stat().st_size if part.exists() else 0
        if offset > entry.size:
            part.unlink()
            offset = 0
        url = self.file_url(entry)
        if offset < entry.size:
            self._fetch(url, part, offset, entry.size)
        size = part.stat().st_size
        if size != entry.size:
            raise RegistryError(
                f"{url}: {size:,} of {entry.size:,} bytes arrived; run the command again to resume", file=url
            )
        digest = _file_sha256(part)
        if "sha256:" + digest != entry.digest:
            part.unlink()
            raise DigestMismatch(f"{url} has sha256:{digest}; the registry index records {entry.digest}", file=url)
        os.replace(part, final)
        return final

    def _fetch(self, url: str, part: Path, offset: int, size: int) -> None:
        headers = {**self._headers, **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == 206 and offset:
                    content_range = response.headers.get("content-range", "")
                    if not content_range.startswith(f"bytes {offset}-"):
                        raise RegistryError(
                            f"{url} answered range {content_range!r} to a request from byte {offset}", file=url
                        )
                    mode = "ab"
                elif response.status_code == 200:
                    mode, offset = "wb", 0  # the server sends the whole file
                else:
                    raise RegistryError(f"GET {url} answered {response.status_code}", file=url)
                with open(part, mode) as fh:
                    for chunk in response.iter_bytes(_CHUNK):
                        offset += len(chunk)
                        if offset > size:
                            raise SizeLimitExceeded(
                                f"{url} is larger than the {size:,} bytes the index records", file=url
                            )
                        fh.write(chunk)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"downloading {url} stopped at byte {offset:,} of {size:,} ({exc}); run the command again to resume",
                file=url,
            ) from exc

    def open(
        self,
        name: str,
        version: str | None = None,
        *,
        trusted_keys: TrustedKeys | None = None,
        limits: Limits | None = None,
    ) -> Package:
        """Download (or reuse) the best version of ``name`` matching ``version`` and open it."""
        entry = self.resolve(name, version)
        path = self.download(entry)
        return open_package(
            path, trusted_keys, limits=limits, expected_digest=entry.digest, digest_cache=REGISTRY_DIGESTS
        )

    # ------------------------------------------------------------------------------- writing
    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise RegistryError(
            f"{self.url} is read over HTTP; publish, yank and promote on the server that holds it", file=self.url
        )

    publish = add = yank = promote = rollback = _read_only


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
