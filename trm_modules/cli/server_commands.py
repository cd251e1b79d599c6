"""`trm` commands of the server area: serve, token."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from ..views import DEFAULT_VIEWS

console = Console()
errors = Console(stderr=True)

DB_HELP = "Store: SQLAlchemy URL or SQLite path (default: $TRM_DB_URL or the user data dir)."


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    registry: Optional[Path] = typer.Option(None, help="Registry folder to serve and publish to (default: "
                                                       "$TRM_REGISTRY, the checkout's registry/, else installed modules)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    public_url: Optional[str] = typer.Option(None, help="URL clients reach this server at (default http://HOST:PORT)."),
    max_body: int = typer.Option(1 << 20, help="Largest request body in bytes (package uploads: --max-package)."),
    max_package: int = typer.Option(256 << 20, help="Largest package upload in bytes."),
    cpu_threads: Optional[int] = typer.Option(None, help="Intra-op threads of the CPU compute thread."),
    views: int = typer.Option(DEFAULT_VIEWS, min=1, help="Test-time views an answer the task's rules reject is sought in."),
    bootstrap_token: bool = typer.Option(True, "--bootstrap-token/--no-bootstrap-token",
                                         help="Create and print an all-scopes token when the store has none."),
) -> None:
    """Serve the registry's modules over HTTP (API docs at /docs), recording to the store."""
    from ..server import ServerSettings, serve as run

    url = public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    settings = ServerSettings(registry=registry, db=db, public_url=url.rstrip("/"), max_body_bytes=max_body,
                              max_package_bytes=max_package, cpu_threads=cpu_threads,
                              views=views)
    try:
        run(settings, host=host, port=port, bootstrap_token=bootstrap_token,
            announce=lambda line: console.print(line, highlight=False, soft_wrap=True))
    except Exception as exc:  # noqa: BLE001 - a refusal to start is reported, not a traceback
        errors.print(f"error: cannot start the server: {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("serve")(serve)
    token_app = typer.Typer(help="API tokens of `trm serve` (stored hashed in the store).", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    def _tokens(db: Optional[str]):
        from ..server import TokenStore
        from ..store import Store

        return TokenStore(Store(db))

    @token_app.command("create")
    def token_create(scope: List[str] = typer.Option(..., "--scope", help="solve, feedback or admin (repeatable)."),
                     name: str = typer.Option("", "--name", help="A label shown by `trm token list`."),
                     db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Create a token; it is printed once and stored only as its sha256."""
        from ..server import TokenError

        try:
            token, info = _tokens(db).create([s for item in scope for s in item.split(",")], name=name)
        except TokenError as exc:
            errors.print(f"error: {exc}", highlight=False)
            raise typer.Exit(2) from exc
        errors.print(f"token {info.id} ({info.name}) with scopes {', '.join(info.scopes)}; it cannot be shown again:",
                     highlight=False)
        print(token)

    @token_app.command("list")
    def token_list(all_tokens: bool = typer.Option(False, "--all", help="Include revoked tokens."),
                   db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """List tokens (ids, names, scopes; never secrets)."""
        for info in _tokens(db).list(include_revoked=all_tokens):
            revoked = f"  revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else ""
            console.print(f"{info.id}  {info.name:<20} {' '.join(info.scopes):<24} "
                          f"created {info.created_at:%Y-%m-%d %H:%M}{revoked}", highlight=False)

    @token_app.command("revoke")
    def token_revoke(token_id: str = typer.Argument(..., help="The id `trm token list` shows."),
                     db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Revoke a token (a running server stops accepting it within seconds)."""
        from ..server import TokenError

        try:
            _tokens(db).revoke(token_id)
        except TokenError as exc:
            errors.print(f"error: {exc}", highlight=False)
            raise typer.Exit(1) from exc
        console.print(f"revoked {token_id}")
