"""Running the server: build the runtime, make sure a token exists, start uvicorn."""

from __future__ import annotations

import logging
from typing import Callable

import uvicorn

from ..redaction import install_log_redaction
from ..store import StoreError
from .app import create_app
from .runtime import ServerRuntime, ServerSettings
from .tokens import SCOPES

log = logging.getLogger("trm_modules.server")


def serve(settings: ServerSettings, *, host: str = "127.0.0.1", port: int = 8000,
          bootstrap_token: bool = True, announce: Callable[[str], None] = print, log_level: str = "warning") -> None:
    """Serve until interrupted. With ``bootstrap_token``, a store without tokens gets one with every
    scope, printed once through ``announce`` (like a notebook server's login token)."""
    install_log_redaction()  # every log line of the process, uvicorn's included
    runtime = ServerRuntime.start(settings)
    report = runtime.report
    if report.activated:
        computing = runtime.host.computing()
        for name, version in sorted(report.activated.items()):
            how = computing.get(f"{name} {version}")
            announce(f"  {name} {version} active" + (f" ({how})" if how else ""))
    else:
        announce(f"registry {report.registry} has no published modules yet: publish one with `trm publish PKG "
                 f"--registry {report.registry}` or POST /v1/admin/packages")
    for name, version in sorted(report.prerelease_only.items()):
        announce(f"  {name}: pre-releases only (newest {version}); serve one with `trm promote {name}@{version}`")
    for name, error in sorted(report.failed.items()):
        announce(f"  {name} NOT active: {error}")
    try:
        if bootstrap_token and not runtime.tokens.list():
            token, info = runtime.tokens.create(SCOPES, name="bootstrap")
            announce(f"no API token existed; created one with scopes {', '.join(info.scopes)} (shown only now):\n"
                     f"  {token}")
    except StoreError as exc:
        announce(f"the store cannot be reached ({exc}); serving anyway: solves and feedback are journaled and "
                 "replayed when it answers, tokens are checked once it does")
    announce(f"store: {runtime.store!r}; packages: {runtime.signature_policy.keys_from}")
    announce(f"trm-modules serving {len(report.activated)} module(s) at {settings.public_url} "
             f"- API docs: {settings.public_url}/docs")
    app = create_app(runtime)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=10)
