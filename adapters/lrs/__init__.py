"""An xAPI 1.0.3 Learning Record Store inside ``trm serve`` (``/xapi``), registered as a plugin.

Statements, State, Activity Profile, Agent Profile, Activities, Agents and About, kept in the
store's database (SQLite or PostgreSQL; tables of ``tables.py``, the adapter's own migrations in ``migrations/``).
Clients authenticate with an API token: ``Authorization: Basic base64(<anything>:<token>)`` (what
xAPI content sends) or ``Bearer <token>``; the token needs the ``feedback`` (or ``admin``) scope to
write, which it becomes the ``authority`` of, or ``read`` to read. A token limited to courses reads and
writes only the statements of its courses (``courses.py`` says how a statement's course is told) and
none of the documents.

Configuration: the setting ``xapi_cors_origins`` this plugin declares (``TRM_XAPI_CORS_ORIGINS``), comma-separated origins
whose browser content may call the LRS (default ``*``: any origin; credentials travel in the
Authorization header, never in cookies); an empty value turns CORS off.

Modules: ``validation`` (data model), ``identity`` (agent keys, equivalence, formats),
``statements`` / ``documents`` (storage), ``signatures`` (JWS), ``multipart``, ``http`` (routes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from trm_modules import hookimpl
from trm_modules.settings import PluginSetting
from trm_modules.store.schema import PluginSchema

from . import tables
from .http import LrsHttp, LrsSettings, xapi_router

__all__ = ["LrsHttp", "LrsSettings", "lrs_for_runtime", "lrs_router", "lrs_settings"]


def lrs_settings(settings: Any) -> LrsSettings:
    """The LRS's settings from the server's (``xapi_cors_origins``, ``public_url``)."""
    origins = tuple(o.strip() for o in getattr(settings, "xapi_cors_origins", "*").split(",") if o.strip())
    return LrsSettings(cors_origins=origins, authority_home=settings.public_url or "http://127.0.0.1:8000")


def lrs_for_runtime(runtime: Any, settings: LrsSettings | None = None) -> LrsHttp:
    """The LRS of a server runtime: its store's database, its API tokens."""
    from .documents import DocumentStore
    from .feedback import FeedbackBridge
    from .statements import StatementStore

    runtime.store.ensure_schema()
    engine = runtime.store.engine
    tokens = runtime.tokens

    def verify_token(secret: str) -> tuple[str, str, tuple[str, ...], frozenset[str] | None] | None:
        grant = tokens.grant_cached(secret) or tokens.grant(secret)
        if grant is None:
            return None
        token_id = secret.split("_")[1] if secret.count("_") >= 2 else "token"
        return token_id, f"trm-modules API token {token_id}", grant.scopes, grant.courses

    settings = settings or lrs_settings(runtime.settings)
    bridge = FeedbackBridge(runtime.recorder, runtime.host.feedback, runtime.host.flush, base=settings.authority_home)
    return LrsHttp(StatementStore(engine), DocumentStore(engine), settings, verify_token, bridge.receive)


def lrs_router(settings: LrsSettings | None = None) -> APIRouter:
    """The ``/xapi`` router; the LRS is built on first use from ``request.app.state.runtime``."""

    def lrs_of(request: Request) -> LrsHttp:
        lrs = getattr(request.app.state, "xapi_lrs", None)
        if lrs is None:
            lrs = request.app.state.xapi_lrs = lrs_for_runtime(request.app.state.runtime, settings)
        return lrs

    return xapi_router(lrs_of)


@hookimpl
def trm_declare_settings() -> list[PluginSetting]:
    """``xapi_cors_origins`` (``TRM_XAPI_CORS_ORIGINS``)."""
    return [
        PluginSetting(
            "xapi_cors_origins",
            str,
            "*",
            "Origins whose browser content may call /xapi, comma-separated; '*': any; empty: none.",
        )
    ]


@hookimpl
def trm_privacy_providers() -> list[Any]:
    """Statements, documents and attachments about a learner (``privacy.py``)."""
    from .privacy import LrsPersonalData

    return [LrsPersonalData()]


@hookimpl
def trm_store_schemas() -> list[PluginSchema]:
    """The LRS's tables (``tables.py``) and their migrations (schema ``lrs``)."""
    return [PluginSchema("lrs", tables.metadata, Path(__file__).parent / "migrations")]


@hookimpl
def trm_register_routes(runtime: Any) -> APIRouter:
    """Mount the LRS at ``/xapi`` of ``trm serve``."""
    return lrs_router()
