"""Running the server: build the runtime, make sure a token exists, start uvicorn."""

from __future__ import annotations

import logging
import socket
from typing import Callable

import uvicorn

from ..errors import TRMError
from ..redaction import install_log_redaction
from ..store import StoreError
from .app import create_app
from .runtime import ServerRuntime, ServerSettings
from .tokens import SCOPES

log = logging.getLogger("trm_modules.server")


class AddressUnavailable(TRMError):
    """``trm serve`` cannot listen where it was told to (the port is taken, the address is not this host's)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, made before anything is loaded or announced, so a taken port fails
    the start at once (``AddressUnavailable``) instead of after the modules are loaded and announced."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise AddressUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover, never a live listener
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = (
            "; another process listens there: stop it or choose another --port" if exc.errno in (98, 48, 10048) else ""
        )
        raise AddressUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def serve(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    bootstrap_token: bool = True,
    announce: Callable[[str], None] = print,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted. With ``bootstrap_token``, a store without tokens gets one with every
    scope, printed once through ``announce`` (like a notebook server's login token)."""
    install_log_redaction()  # every log line of the process, uvicorn's included
    sock = listening_socket(host, port)
    try:
        runtime = ServerRuntime.start(settings)
    except BaseException:
        sock.close()
        raise
    report = runtime.report
    if report.activated:
        computing = runtime.host.computing()
        for name, version in sorted(report.activated.items()):
            how = computing.get(f"{name} {version}")
            announce(f"  {name} {version} active" + (f" ({how})" if how else ""))
    elif not report.failed and not report.prerelease_only:
        announce(
            f"registry {report.registry} has no published modules yet: publish one with `trm publish PKG "
            f"--registry {report.registry}` or POST /v1/admin/packages"
        )
    else:  # modules are published, but none could be activated: say why below, not that there are none
        announce(f"registry {report.registry}: no published module is active")
    for name, version in sorted(report.prerelease_only.items()):
        announce(f"  {name}: pre-releases only (newest {version}); serve one with `trm promote {name}@{version}`")
    for name, error in sorted(report.failed.items()):
        announce(f"  {name} NOT active: {error}")
    try:
        existing = runtime.tokens.list()
        if bootstrap_token and not existing:
            token, info = runtime.tokens.create(SCOPES, name="bootstrap")
            announce(
                f"no API token existed; created one with scopes {', '.join(info.scopes)} (shown only now):\n  {token}"
            )
        else:  # a restart: tokens are shown only when made; say how to get another
            announce(
                f"API tokens: {len(existing)} in the store (shown only when created); make one with "
                f"`trm token create --scope solve --scope feedback{_db_flag(settings)}`, list them with "
                "`trm token list`"
            )
    except StoreError as exc:
        announce(
            f"the store cannot be reached ({exc}); serving anyway: solves and feedback are journaled and "
            "replayed when it answers, tokens are checked once it does"
        )
    announce(f"store: {runtime.store!r}; packages: {runtime.signature_policy.keys_from}")
    if settings.rate_limit > 0:
        announce(
            f"rate limit: {settings.rate_limit:g} requests per second per token "
            f"(bursts of {settings.rate_limit_burst or max(1.0, settings.rate_limit):g})"
        )
    announce(
        f"trm-modules serving {len(report.activated)} module(s) at {settings.public_url} "
        f"- API docs: {settings.public_url}/docs"
    )
    app = create_app(runtime)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=max(1, round(settings.keep_alive_timeout_s)),
    )
    uvicorn.Server(config).run(sockets=[sock])


def _db_flag(settings: ServerSettings) -> str:
    """`` --db URL`` when the store is not the default one a bare `trm token create` opens (password hidden)."""
    if not settings.db_url:
        return ""
    from ..redaction import redact

    return f" --db {redact(settings.db_url)}"
