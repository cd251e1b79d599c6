"""The HTTP service for course platforms: a thin FastAPI shell over ``Host``, the registry and the store.

    from trm_modules.server import ServerSettings, ServerRuntime, create_app, serve
    serve(ServerSettings(registry=Path("registry"), db="store.sqlite3"), host="127.0.0.1", port=8000)

``tokens`` keeps the API's bearer tokens (hashed); ``problems`` the RFC 9457 error documents;
``limits`` the body-size limits; ``metrics`` the Prometheus metrics.
"""

from .app import create_app
from .runtime import ServerRuntime, ServerSettings, StartReport, served_registry
from .serve import serve
from .tokens import SCOPES, TokenError, TokenGrant, TokenInfo, TokenStore

__all__ = [
    "create_app",
    "serve",
    "ServerRuntime",
    "ServerSettings",
    "StartReport",
    "served_registry",
    "SCOPES",
    "TokenError",
    "TokenGrant",
    "TokenInfo",
    "TokenStore",
]
