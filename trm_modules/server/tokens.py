"""API tokens: random bearer secrets with scopes, stored only as their sha256 (table ``api_tokens``).

A token may be limited to courses (``courses``; migration ``0008_token_courses``): it then sees, solves,
gives feedback on and reports on only those courses (``TokenGrant.allows``; the routes enforce it).

A token reads ``trm_<id>_<secret>``: ``id`` names it in listings and revocations, the secret is 32
random bytes. The store keeps the sha256 of the whole token, never the token itself, so a leaked
database yields no usable credential. ``trm token create`` prints a token once; it cannot be shown again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import TRMError
from ..store import Store, StoreUnavailable

#: What a token may do: ``solve`` (solve, read modules), ``feedback`` (feedback, xAPI statements), ``read``
#: (reports: statistics, comparisons, recorded solves, xAPI statement reads, the dashboard), ``admin``.
SCOPES = ("solve", "feedback", "read", "admin")
#: Longest course name a token can be limited to (the store's context column is as long).
COURSE_MAX = 200
TOKEN_PREFIX = "trm_"

# Core table matching migration 0002_api_tokens (the store's ORM models are not ours to extend).
_metadata = MetaData()
api_tokens = Table(
    "api_tokens",
    _metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("courses", Text, nullable=True),  # a JSON list of course names; NULL: every course
)


class TokenError(TRMError, ValueError):
    """A token request is malformed (unknown scope, empty scope list, unknown token id)."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    courses: tuple[str, ...] | None = None  # None: every course


@dataclass(frozen=True)
class TokenGrant:
    """What a verified token may do: its ``scopes`` and, when limited, its ``courses`` (None: every course)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    courses: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        """Whether the token is limited to some courses."""
        return self.courses is not None

    def allows(self, course: str | None) -> bool:
        """Whether the token may see or act on ``course`` (a solve without a course is no course of a limited token)."""
        return self.courses is None or (course is not None and course in self.courses)


def token_digest(token: str) -> str:
    """The hex sha256 the store keeps for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not chosen:
        raise TokenError(f"a token needs at least one scope; choose from {', '.join(SCOPES)}")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise TokenError(f"unknown scope(s) {', '.join(unknown)}; expected some of {', '.join(SCOPES)}")
    return chosen


def _check_courses(courses: Iterable[str] | None) -> tuple[str, ...] | None:
    if courses is None:
        return None
    chosen = tuple(dict.fromkeys(c.strip() for c in courses if c.strip()))
    if not chosen:
        return None
    too_long = [c for c in chosen if len(c) > COURSE_MAX]
    if too_long:
        raise TokenError(f"course {too_long[0][:40]!r}… is longer than {COURSE_MAX} characters")
    return chosen


def _courses_of(stored: str | None) -> tuple[str, ...] | None:
    return tuple(json.loads(stored)) if stored else None


class TokenStore:
    """Creates, lists, revokes and verifies API tokens in a store's ``api_tokens`` table.

    ``verify`` caches answers for ``cache_s`` seconds so that a request costs no database round
    trip; a revocation therefore takes effect within ``cache_s`` on a running server. While the
    database cannot be reached, a token seen before keeps its last known scopes (however old the
    answer); an unseen one raises ``StoreUnavailable`` (the server answers 503).
    """

    def __init__(self, store: Store, *, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, TokenGrant | None]] = {}
        self._lock = threading.Lock()

    def create(
        self, scopes: Iterable[str], name: str = "", courses: Iterable[str] | None = None
    ) -> tuple[str, TokenInfo]:
        """Make a token with ``scopes``, limited to ``courses`` when given (None or empty: every course);
        returns (the token, shown only now; its listing)."""
        chosen = _check_scopes(scopes)
        limited = _check_courses(courses)
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(
            id=token_id, name=name or token_id, scopes=chosen, created_at=datetime.now(timezone.utc), courses=limited
        )
        with self.store.session() as session, session.begin():
            session.execute(
                api_tokens.insert().values(
                    id=info.id,
                    name=info.name,
                    scopes=" ".join(chosen),
                    secret_sha256=token_digest(token),
                    created_at=info.created_at,
                    courses=json.dumps(list(limited)) if limited is not None else None,
                )
            )
        return token, info

    def list(self, include_revoked: bool = False) -> list[TokenInfo]:
        """Every token (not revoked ones unless asked), oldest first."""
        query = select(api_tokens).order_by(api_tokens.c.created_at)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with self.store.session() as session:
            rows = session.execute(query).mappings().all()
        return [
            TokenInfo(
                id=r["id"],
                name=r["name"],
                scopes=tuple(r["scopes"].split()),
                created_at=r["created_at"],
                revoked_at=r["revoked_at"],
                courses=_courses_of(r["courses"]),
            )
            for r in rows
        ]

    def revoke(self, token_id: str) -> None:
        """Revoke the token ``token_id``; ``TokenError`` if there is none."""
        with self.store.session() as session, session.begin():
            result = session.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=datetime.now(timezone.utc))
            )
        if getattr(result, "rowcount", 0) == 0:  # an UPDATE's CursorResult
            raise TokenError(f"no token with id {token_id!r}; `trm token list` shows the ids")
        with self._lock:
            self._cache.clear()

    def grant_cached(self, token: str) -> TokenGrant | None:
        """The grant of ``token`` if a recent ``grant`` found it valid, else None (then call ``grant``)."""
        with self._lock:
            cached = self._cache.get(token_digest(token))
        if cached is not None and time.monotonic() - cached[0] < self.cache_s:
            return cached[1]
        return None

    def grant(self, token: str) -> TokenGrant | None:
        """What ``token`` may do (scopes, courses), or None if it is unknown or revoked."""
        digest = token_digest(token)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        query = select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.scopes, api_tokens.c.courses).where(
            api_tokens.c.secret_sha256 == digest, api_tokens.c.revoked_at.is_(None)
        )
        try:
            with self.store.session() as session:
                row = session.execute(query).first()
        except (StoreUnavailable, SQLAlchemyError) as exc:
            if cached is not None:
                return cached[1]  # stale beats refusing every request while the database is away
            raise StoreUnavailable(
                f"cannot check the token while the store is unreachable: {str(exc).splitlines()[0][:200]}"
            ) from exc
        grant = None
        if row is not None:
            courses = _courses_of(row[3])
            grant = TokenGrant(
                id=row[0],
                name=row[1],
                scopes=tuple(row[2].split()),
                courses=frozenset(courses) if courses is not None else None,
            )
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: random invalid tokens must not grow memory
                self._cache.clear()
            self._cache[digest] = (now, grant)
        return grant

    def verify_cached(self, token: str) -> tuple[str, ...] | None:
        """The scopes of ``token`` if a recent ``verify`` found it valid, else None (then call ``verify``)."""
        grant = self.grant_cached(token)
        return grant.scopes if grant is not None else None

    def verify(self, token: str) -> tuple[str, ...] | None:
        """The scopes of ``token``, or None if it is unknown or revoked (``grant`` also gives its courses)."""
        grant = self.grant(token)
        return grant.scopes if grant is not None else None
