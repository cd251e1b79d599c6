"""`trm` commands of the server area: serve, token."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from ..views import DEFAULT_VIEWS
from .errors import fail

console = Console()
errors = Console(stderr=True)

DB_HELP = "Store: SQLAlchemy URL or SQLite path (default: $TRM_DB_URL, else <TRM_HOME>/store.sqlite3)."


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    registry: Optional[Path] = typer.Option(
        None,
        help="Registry folder to serve and publish to (default: "
        "$TRM_REGISTRY, the checkout's registry/, else installed modules).",
    ),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    public_url: Optional[str] = typer.Option(None, help="URL clients reach this server at (default http://HOST:PORT)."),
    max_body: Optional[int] = typer.Option(
        None, help="Largest request body in bytes (default 1 MiB; package uploads: --max-package)."
    ),
    max_package: Optional[int] = typer.Option(None, help="Largest package upload in bytes (default 256 MiB)."),
    cpu_threads: Optional[int] = typer.Option(
        None,
        help="The most intra-op threads a CPU batch may use (default: "
        "every core; the auto engine also measures 1 and keeps the faster).",
    ),
    views: Optional[int] = typer.Option(
        None, min=1, help=f"Test-time views an answer the task's rules reject is sought in (default {DEFAULT_VIEWS})."
    ),
    engine: Optional[str] = typer.Option(
        None,
        help="What computes the models' steps on the CPU: auto (default: "
        "eager or ONNX Runtime, 1 core or all, measured per module and batch shape "
        "when it loads), eager (PyTorch) or onnx (ONNX Runtime; the onnx extra).",
    ),
    precision: Optional[str] = typer.Option(
        None,
        help="fp32, bf16 (autocast) or auto (default: bf16 only where the "
        "CPU measures fast at it and the package's evaluation shows no loss).",
    ),
    bootstrap_token: bool = typer.Option(
        True,
        "--bootstrap-token/--no-bootstrap-token",
        help="Create and print an all-scopes token when the store has none.",
    ),
    trusted_keys: Optional[Path] = typer.Option(
        None,
        "--trusted-keys",
        help="Folder of *.pub keys packages must be signed with, at upload and load (default: the registry's keys/).",
    ),
    allow_unsigned: bool = typer.Option(
        False, "--allow-unsigned", help="Accept unsigned packages and any signer (turns the signature policy off)."
    ),
    registry_url: Optional[str] = typer.Option(
        None,
        "--registry-url",
        help="Serve the modules of a registry read "
        "over HTTP (another trm serve's /registry, a static web server) "
        "instead of a folder; read-only (give --trusted-keys).",
    ),
    registry_token: Optional[str] = typer.Option(
        None, "--registry-token", envvar="TRM_REGISTRY_TOKEN", help="Bearer token for --registry-url."
    ),
    rate_limit: Optional[float] = typer.Option(
        None,
        "--rate-limit",
        min=0,
        help="Requests per second each API "
        "token may make (per replica; 429 with Retry-After beyond it; "
        "default $TRM_RATE_LIMIT, else 0: no limit).",
    ),
    rate_limit_burst: Optional[float] = typer.Option(
        None,
        "--rate-limit-burst",
        min=1,
        help="Requests a token may save up and spend at once (default: one second's worth).",
    ),
    request_timeout: Optional[float] = typer.Option(
        None,
        "--request-timeout",
        min=0.001,
        help="Seconds a client has to send a request body (408 after; default 60, package uploads 600).",
    ),
    keep_alive_timeout: Optional[float] = typer.Option(
        None, "--keep-alive-timeout", min=0.001, help="Seconds an idle keep-alive connection stays open (default 5)."
    ),
) -> None:
    """Serve the registry's modules over HTTP (API docs at /docs), recording to the store.

    Every option left out comes from the environment (``TRM_<SETTING>``) or the settings file."""
    from ..server import ServerSettings, serve as run

    try:
        settings = ServerSettings(
            registry=registry,
            db=db,
            public_url=public_url,
            max_body_bytes=max_body,
            max_package_bytes=max_package,
            cpu_threads=cpu_threads,
            views=views,
            engine=engine,
            precision=precision,
            trusted_keys=trusted_keys,
            allow_unsigned=allow_unsigned or None,
            registry_url=registry_url,
            registry_token=registry_token,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst,
            request_timeout_s=request_timeout,
            keep_alive_timeout_s=keep_alive_timeout,
        )
        if "public_url" not in settings.model_fields_set:
            settings.public_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        settings.public_url = (settings.public_url or "").rstrip("/")
        run(
            settings,
            host=host,
            port=port,
            bootstrap_token=bootstrap_token,
            announce=lambda line: console.print(line, highlight=False, soft_wrap=True),
        )
    except Exception as exc:  # noqa: BLE001 - a refusal to start is reported, not a traceback
        fail(exc, "cannot start the server")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("serve")(serve)
    token_app = typer.Typer(help="API tokens of `trm serve` (stored hashed in the store).", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    def _tokens(db: Optional[str]):
        from ..server import TokenStore
        from ..settings import Settings
        from ..store import Store

        return TokenStore(Store(Settings(db_url=db).db))

    @token_app.command("create")
    def token_create(
        scope: List[str] = typer.Option(..., "--scope", help="solve, feedback, read or admin (repeatable)."),
        course: List[str] = typer.Option(
            [],
            "--course",
            help="Limit the token to this course (repeatable): it sees, solves, gives feedback and reports only there.",
        ),
        name: str = typer.Option("", "--name", help="A label shown by `trm token list`."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Create a token; it is printed once and stored only as its sha256."""
        from ..server import TokenError

        try:
            token, info = _tokens(db).create(
                [s for item in scope for s in item.split(",")], name=name, courses=course or None
            )
        except TokenError as exc:
            fail(exc)
        limited = f", limited to course(s) {', '.join(info.courses)}" if info.courses else ""
        errors.print(
            f"token {info.id} ({info.name}) with scopes {', '.join(info.scopes)}{limited}; it cannot be shown again:",
            highlight=False,
        )
        print(token)

    @token_app.command("list")
    def token_list(
        all_tokens: bool = typer.Option(False, "--all", help="Include revoked tokens."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """List tokens (ids, names, scopes; never secrets)."""
        for info in _tokens(db).list(include_revoked=all_tokens):
            revoked = f"  revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else ""
            courses = f"  courses {', '.join(info.courses)}" if info.courses else ""
            console.print(
                f"{info.id}  {info.name:<20} {' '.join(info.scopes):<24} "
                f"created {info.created_at:%Y-%m-%d %H:%M}{courses}{revoked}",
                highlight=False,
            )

    @token_app.command("revoke")
    def token_revoke(
        token_id: str = typer.Argument(..., help="The id `trm token list` shows."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Revoke a token (a running server stops accepting it within seconds)."""
        from ..server import TokenError

        try:
            _tokens(db).revoke(token_id)
        except TokenError as exc:
            fail(exc)
        console.print(f"revoked {token_id}")
