"""``crmflow tokens``: personal API tokens from the command line (a ``crmflow.commands`` plugin)."""

from __future__ import annotations

from datetime import timedelta

import click

from engine.cli import pass_engine
from engine.runtime import Engine
from webui.api import tokens as token_store


@click.group()
def tokens() -> None:
    """Personal tokens for the REST API (/api/v1)."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. \"website form\".")
@click.option("--days", type=click.IntRange(min=1), help="Expire after this many days (default: never).")
@pass_engine
def create(engine: Engine, username: str, name: str, days: int | None) -> None:
    """Make a token that acts as USERNAME; it is printed once and never again."""
    expires_at = engine.clock() + timedelta(days=days) if days else None
    issued = token_store.create_token(engine, username, name, expires_at)
    click.echo(f"Token {issued.token.id} for {username} ({issued.token.name}), "
               f"{'expires ' + expires_at.strftime('%Y-%m-%d') if expires_at else 'does not expire'}:")
    click.echo(issued.secret)
    click.echo("Keep it now: only its hash is stored. Send it as  Authorization: Bearer <token>", err=True)


@tokens.command("list")
@click.option("--user", "username", help="Only this user's tokens.")
@click.option("--all", "include_revoked", is_flag=True, help="Revoked tokens too.")
@pass_engine
def list_tokens(engine: Engine, username: str | None, include_revoked: bool) -> None:
    """List tokens, newest first (their beginnings, never the secrets)."""
    found = token_store.tokens(engine, username, include_revoked)
    for token in found:
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else (
            f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "active")
        used = f"used {token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never used"
        click.echo(f"{token.id:6}  {token.user.username:20} {token.prefix}…  {token.name[:30]:30} {state:20} {used}")
    if not found:
        click.echo("No tokens.")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@pass_engine
def revoke(engine: Engine, token_id: int) -> None:
    """Revoke token TOKEN_ID for good: requests with it are refused from now on."""
    token = token_store.revoke_token(engine, token_id, by="command line")
    click.echo(f"Revoked token {token.id} of {token.user.username} ({token.name}).")
