"""LTI state in the server's store: platform registrations, the tool's signing keys, login states,
used nonces and launches (the adapter's store schema ``lti``, migrations in ``migrations/``; shared by every replica on one
database)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from trm_modules import hookimpl
from trm_modules.errors import TRMError
from trm_modules.store.schema import PluginSchema
from trm_modules.store import Store

#: How long a login state waits for its launch, and how long a launch's activity may report.
STATE_TTL = timedelta(minutes=10)
LAUNCH_TTL = timedelta(hours=8)

metadata = MetaData()
lti_platforms = Table(
    "lti_platforms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(500), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("deployment_ids", JSON, nullable=False),
    Column("auth_login_url", String(1000), nullable=False),
    Column("auth_token_url", String(1000), nullable=False),
    Column("jwks_url", String(1000), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("issuer", "client_id", name="uq_lti_platforms_issuer_client"),
)
lti_tool_keys = Table(
    "lti_tool_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
lti_states = Table(
    "lti_states",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("nonce", String(64), nullable=False),
    Column("platform_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
lti_nonces = Table(
    "lti_nonces",
    metadata,
    Column("platform_id", Integer, primary_key=True),
    Column("nonce", String(200), primary_key=True),
    Column("used_at", DateTime(timezone=True), nullable=False),
)
lti_launches = Table(
    "lti_launches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("platform_id", Integer, nullable=False),
    Column("deployment_id", String(200), nullable=False),
    Column("context_id", String(200), nullable=True),
    Column("resource_link_id", String(200), nullable=True),
    Column("user_id", String(200), nullable=False),
    Column("module", String(200), nullable=True),
    Column("version", String(100), nullable=True),
    Column("claims", JSON, nullable=False),
    Column("activity", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


@hookimpl
def trm_store_schemas() -> list[PluginSchema]:
    """The LTI tool's tables and their migrations (schema ``lti``); registered by the ``lti_routes`` plugin."""
    return [PluginSchema("lti", metadata, Path(__file__).parent / "migrations")]


class LtiError(TRMError):
    """An LTI request refused: ``status`` is the HTTP status, ``slug`` names the rule broken."""

    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message


@dataclass(frozen=True)
class Platform:
    """An LMS registered with this tool (``trm lti add-platform``)."""

    id: int
    issuer: str
    client_id: str
    deployment_ids: tuple[str, ...]
    auth_login_url: str
    auth_token_url: str
    jwks_url: str
    name: str


@dataclass(frozen=True)
class Launch:
    """One verified launch: who (user, course) opened what (module, version) from which platform."""

    id: str
    kind: str  # "resource-link" | "deep-link"
    platform: Platform
    deployment_id: str
    context_id: str | None
    resource_link_id: str | None
    user_id: str
    module: str | None
    version: str | None
    claims: dict[str, Any]
    activity: dict[str, Any]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class LtiStore:
    """Reads and writes the LTI tables of ``store`` (one short transaction per call)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # --------------------------------------------------------------------------- platforms
    def add_platform(
        self,
        *,
        issuer: str,
        client_id: str,
        auth_login_url: str,
        auth_token_url: str,
        jwks_url: str,
        deployment_ids: list[str] | tuple[str, ...] = (),
        name: str = "",
    ) -> Platform:
        """Register a platform; registering the same issuer and client id again updates it."""
        for label, url in (
            ("auth-login-url", auth_login_url),
            ("auth-token-url", auth_token_url),
            ("jwks-url", jwks_url),
            ("issuer", issuer),
        ):
            if not url.startswith(("https://", "http://")):
                raise LtiError(400, "bad-registration", f"--{label} must be an http(s) URL, got {url!r}")
        if not client_id:
            raise LtiError(400, "bad-registration", "--client-id must not be empty")
        values = {
            "issuer": issuer,
            "client_id": client_id,
            "deployment_ids": list(deployment_ids),
            "auth_login_url": auth_login_url,
            "auth_token_url": auth_token_url,
            "jwks_url": jwks_url,
            "name": name or issuer,
        }
        with self.engine.begin() as connection:
            existing = connection.execute(
                select(lti_platforms.c.id).where(
                    lti_platforms.c.issuer == issuer, lti_platforms.c.client_id == client_id
                )
            ).scalar()
            if existing is None:
                connection.execute(insert(lti_platforms).values(**values, created_at=_now()))
            else:
                connection.execute(update(lti_platforms).where(lti_platforms.c.id == existing).values(**values))
        platform = self.find_platform(issuer, client_id)
        assert platform is not None
        return platform

    def platforms(self) -> list[Platform]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(lti_platforms).order_by(lti_platforms.c.id)).mappings().all()
        return [self._platform(row) for row in rows]

    def find_platform(self, issuer: str, client_id: str | None = None) -> Platform | None:
        """The platform registered for ``issuer`` (and ``client_id`` when given; else the only one of the issuer)."""
        query = select(lti_platforms).where(lti_platforms.c.issuer == issuer)
        if client_id:
            query = query.where(lti_platforms.c.client_id == client_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return self._platform(rows[0]) if len(rows) == 1 else None

    def platform(self, platform_id: int) -> Platform:
        with self.engine.connect() as connection:
            row = connection.execute(select(lti_platforms).where(lti_platforms.c.id == platform_id)).mappings().one()
        return self._platform(row)

    @staticmethod
    def _platform(row: Any) -> Platform:
        return Platform(
            id=row["id"],
            issuer=row["issuer"],
            client_id=row["client_id"],
            deployment_ids=tuple(row["deployment_ids"] or ()),
            auth_login_url=row["auth_login_url"],
            auth_token_url=row["auth_token_url"],
            jwks_url=row["jwks_url"],
            name=row["name"],
        )

    # ------------------------------------------------------------------------------ tool keys
    def tool_keys(self) -> list[tuple[str, rsa.RSAPrivateKey]]:
        """The tool's RSA signing keys, newest first; one is made on first use."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(lti_tool_keys).order_by(lti_tool_keys.c.created_at.desc())).all()
        if not rows:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
            try:
                with self.engine.begin() as connection:
                    connection.execute(
                        insert(lti_tool_keys).values(kid=secrets.token_hex(8), private_pem=pem, created_at=_now())
                    )
            except IntegrityError:  # another replica made one at the same moment
                pass
            return self.tool_keys()
        return [(row.kid, serialization.load_pem_private_key(row.private_pem.encode(), password=None)) for row in rows]

    # --------------------------------------------------------------------------- login state
    def issue_state(self, platform: Platform) -> tuple[str, str]:
        """A fresh single-use (state, nonce) pair for a login of ``platform``."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.begin() as connection:
            connection.execute(delete(lti_states).where(lti_states.c.created_at < _now() - STATE_TTL))
            connection.execute(
                insert(lti_states).values(state=state, nonce=nonce, platform_id=platform.id, created_at=_now())
            )
        return state, nonce

    def consume_state(self, state: str) -> tuple[Platform, str]:
        """The platform and nonce of a login ``state``, which cannot be used again."""
        with self.engine.begin() as connection:
            row = connection.execute(select(lti_states).where(lti_states.c.state == state)).first()
            if row is not None:
                connection.execute(delete(lti_states).where(lti_states.c.state == state))
        if row is None or _aware(row.created_at) < _now() - STATE_TTL:
            raise LtiError(
                400,
                "unknown-state",
                "the launch's state is unknown, expired or already used; start again from the platform's link",
            )
        return self.platform(row.platform_id), row.nonce

    def use_nonce(self, platform: Platform, nonce: str) -> None:
        """Remember ``nonce`` as used; a second use is a replay."""
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(lti_nonces).values(platform_id=platform.id, nonce=nonce, used_at=_now()))
        except IntegrityError as exc:
            raise LtiError(
                401,
                "replayed-nonce",
                f"the id_token's nonce {nonce[:12]}… was already used: a launch can be played once",
            ) from exc

    # ------------------------------------------------------------------------------- launches
    def create_launch(
        self,
        *,
        kind: str,
        platform: Platform,
        claims: dict[str, Any],
        module: str | None,
        version: str | None,
        activity: dict[str, Any],
    ) -> Launch:
        launch_id = secrets.token_urlsafe(32)
        context = claims.get(CONTEXT_CLAIM) or {}
        link = claims.get(RESOURCE_LINK_CLAIM) or {}
        values = {
            "id": launch_id,
            "kind": kind,
            "platform_id": platform.id,
            "deployment_id": claims.get(DEPLOYMENT_CLAIM, ""),
            "context_id": context.get("id"),
            "resource_link_id": link.get("id"),
            "user_id": claims["sub"],
            "module": module,
            "version": version,
            "claims": json.loads(json.dumps(claims)),
            "activity": activity,
            "created_at": _now(),
            "expires_at": _now() + LAUNCH_TTL,
        }
        with self.engine.begin() as connection:
            connection.execute(insert(lti_launches).values(**values))
        return self.launch(launch_id)

    def launch(self, launch_id: str) -> Launch:
        with self.engine.connect() as connection:
            row = connection.execute(select(lti_launches).where(lti_launches.c.id == launch_id)).mappings().first()
        if row is None or _aware(row["expires_at"]) < _now():
            raise LtiError(
                404, "unknown-launch", "this launch is unknown or has expired; open the activity again from your course"
            )
        return Launch(
            id=row["id"],
            kind=row["kind"],
            platform=self.platform(row["platform_id"]),
            deployment_id=row["deployment_id"],
            context_id=row["context_id"],
            resource_link_id=row["resource_link_id"],
            user_id=row["user_id"],
            module=row["module"],
            version=row["version"],
            claims=row["claims"],
            activity=row["activity"],
        )

    def save_activity(self, launch_id: str, activity: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(lti_launches).where(lti_launches.c.id == launch_id).values(activity=activity))


LTI_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE_CLAIM = LTI_CLAIM + "message_type"
VERSION_CLAIM = LTI_CLAIM + "version"
DEPLOYMENT_CLAIM = LTI_CLAIM + "deployment_id"
CONTEXT_CLAIM = LTI_CLAIM + "context"
RESOURCE_LINK_CLAIM = LTI_CLAIM + "resource_link"
CUSTOM_CLAIM = LTI_CLAIM + "custom"
TARGET_LINK_CLAIM = LTI_CLAIM + "target_link_uri"
DEEP_LINKING_SETTINGS_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
DEEP_LINKING_CONTENT_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
DEEP_LINKING_DATA_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
AGS_SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


class LtiPersonalData:
    """The LTI tool's personal data (``trm_privacy_providers``): launches, which carry the platform's user id
    (``sub``, also the pseudonym of the learner's solves) and the launch's claims (name, e-mail, roles when the
    platform sends them)."""

    name = "lti"

    def declare(self) -> list[Any]:
        from trm_modules.store.privacy import PersonalData

        return [
            PersonalData(
                "lti_launches",
                ("user_id", "claims", "activity", "created_at"),
                "Each launch from a course platform: who launched which activity, with the platform's "
                "claims (name and e-mail when sent) and the activity's progress.",
            )
        ]

    def _where(self, subject: Any) -> Any:
        users = set(subject.lti_users) | set(subject.pseudonyms)
        return lti_launches.c.user_id.in_(users) if users else None

    def link(self, connection: Any, subject: Any) -> Any:
        """A launch's user id is the pseudonym of the learner's solves; its e-mail claim is their xAPI mailbox."""
        from trm_modules.store.privacy import Subject

        mailboxes = {key[len("mbox:mailto:") :] for key in subject.agent_keys if key.startswith("mbox:mailto:")}
        users = set(subject.lti_users) | set(subject.pseudonyms)
        linked = Subject()
        if not users and not mailboxes:
            return linked
        rows = connection.execute(select(lti_launches.c.user_id, lti_launches.c.claims)).all()
        for row in rows:
            email = str((row.claims or {}).get("email") or "").lower()
            if row.user_id not in users and (not email or email not in mailboxes):
                continue
            linked.lti_users.add(row.user_id)
            linked.pseudonyms.add(row.user_id)
            email = (row.claims or {}).get("email")
            if email:
                linked.agent_keys.add("mbox:mailto:" + str(email).lower())
        return linked

    def export(self, connection: Any, subject: Any) -> dict[str, list[Any]]:
        from trm_modules.store.privacy import jsonable

        where = self._where(subject)
        rows = connection.execute(select(lti_launches).where(where)).all() if where is not None else []
        return {"lti_launches": [jsonable(row) for row in rows]}

    def erase(self, connection: Any, subject: Any) -> dict[str, int]:
        where = self._where(subject)
        removed = connection.execute(delete(lti_launches).where(where)).rowcount or 0 if where is not None else 0
        return {"lti_launches": removed}

    def expire(self, connection: Any, before: datetime) -> dict[str, int]:
        return {
            "lti_launches": connection.execute(delete(lti_launches).where(lti_launches.c.created_at < before)).rowcount
            or 0
        }


@hookimpl
def trm_privacy_providers() -> list[Any]:
    """Launches (``LtiPersonalData``); registered by the ``lti_routes`` plugin."""
    return [LtiPersonalData()]
