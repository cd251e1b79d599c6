"""``trm lti …``: platform registrations of the LTI 1.3 tool, stored in the server's database
(registered through the ``trm_register_commands`` hook)."""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.console import Console

from trm_modules import hookimpl

console = Console()
errors = Console(stderr=True)
DB_HELP = "Store URL or SQLite path (default: $TRM_DB_URL or the user data dir); the one trm serve uses."

lti_app = typer.Typer(
    help="LTI 1.3 tool: register course platforms (Canvas, Moodle, Brightspace, …).", no_args_is_help=True
)


def _store(db: Optional[str]):
    from trm_modules.store import Store

    from .storage import LtiStore

    store = Store(db)
    store.ensure_schema()
    return LtiStore(store)


@lti_app.command("add-platform")
def add_platform(
    issuer: str = typer.Option(
        ..., "--issuer", help="The platform's issuer (iss), e.g. https://canvas.instructure.com."
    ),
    client_id: str = typer.Option(..., "--client-id", help="The client id the platform gave this tool."),
    auth_login_url: str = typer.Option(..., "--auth-login-url", help="The platform's OIDC authorization endpoint."),
    auth_token_url: str = typer.Option(..., "--auth-token-url", help="The platform's OAuth 2 token endpoint (AGS)."),
    jwks_url: str = typer.Option(..., "--jwks-url", help="The platform's public key set (JWKS) URL."),
    deployment_id: List[str] = typer.Option(
        [], "--deployment-id", help="Accepted deployment ids (repeatable; none: any)."
    ),
    name: str = typer.Option("", "--name", help="A label shown to course authors."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Register (or update) a platform; launches from it are then accepted."""
    from .storage import LtiError

    try:
        platform = _store(db).add_platform(
            issuer=issuer,
            client_id=client_id,
            auth_login_url=auth_login_url,
            auth_token_url=auth_token_url,
            jwks_url=jwks_url,
            deployment_ids=deployment_id,
            name=name,
        )
    except LtiError as exc:
        errors.print(f"error: {exc.message}", highlight=False)
        raise typer.Exit(2) from exc
    console.print(
        f"platform {platform.id}: {platform.name} (issuer {platform.issuer}, client id {platform.client_id})",
        highlight=False,
    )


@lti_app.command("platforms")
def platforms(
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """List the registered platforms."""
    rows = [
        platform.__dict__ | {"deployment_ids": list(platform.deployment_ids)} for platform in _store(db).platforms()
    ]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        deployments = ", ".join(row["deployment_ids"]) or "any deployment"
        console.print(
            f"{row['id']}  {row['name']}  iss={row['issuer']}  client_id={row['client_id']}  {deployments}",
            highlight=False,
        )


@lti_app.command("config")
def config(
    public_url: str = typer.Option(
        "http://127.0.0.1:8000", "--public-url", help="The URL platforms reach trm serve at."
    ),
) -> None:
    """The URLs to enter when registering this tool in an LMS."""
    from .routes import tool_urls

    print(json.dumps(tool_urls(public_url), indent=1))


@hookimpl
def trm_register_commands(cli: typer.Typer) -> None:
    """Add ``trm lti``."""
    cli.add_typer(lti_app, name="lti")
