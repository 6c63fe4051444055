"""Personal API tokens: made in the UI or with ``crmflow tokens create``, shown once,
kept only as a SHA-256 hash, revocable.

A token is ``crm_`` and 43 random URL-safe characters (256 bits): far beyond guessing,
so one fast hash is enough (a slow password hash would only slow every request down),
and the database finds it by its hash's unique index.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine import people
from engine.errors import NotAuthorized, NotFound
from engine.runtime import Engine
from webui import readmodel
from webui.texts import _

TOKEN_PREFIX = "crm_"
SHOWN_PREFIX_LENGTH = 12  # "crm_" and 8 characters: enough to tell one's tokens apart
MAX_NAME_LENGTH = 100
# last_used_at is refreshed when older than this: a write per request would cost more than it tells.
LAST_USED_GRANULARITY = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    token: readmodel.ApiToken
    secret: str  # the whole token: shown to its owner once, never stored


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(engine: Engine, username: str, name: str, expires_at: datetime | None = None) -> IssuedToken:
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the token a name, e.g. where it is used (\"website form\").")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"A token's name is at most {MAX_NAME_LENGTH} characters.")
    now = engine.clock()
    if expires_at is not None and expires_at <= now:
        raise ValueError("A token's expiry must be in the future.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.transaction() as session:
        user = people.get_user(session, username)
        if not user.active:
            raise NotAuthorized(_("%(user)s is not active and cannot have API tokens.", user=username),
                                code="inactive_user")
        token = readmodel.add_token(session, user.id, name, hash_token(secret), secret[:SHOWN_PREFIX_LENGTH], now,
                                    expires_at)
    return IssuedToken(token, secret)


def tokens(engine: Engine, username: str | None = None, include_revoked: bool = False) -> list[readmodel.ApiToken]:
    """Tokens, newest first: one user's, or everyone's."""
    with engine.reading() as session:
        user_id = people.get_user(session, username).id if username is not None else None
        return readmodel.tokens_of(session, user_id, include_revoked)


def revoke_token(engine: Engine, token_id: int, by: str, owner: str | None = None) -> readmodel.ApiToken:
    """Revoke a token for good. With ``owner``, only a token of that user (a person
    revoking their own in the UI); revoking twice is harmless."""
    with engine.transaction() as session:
        token = readmodel.token_with_user(session, token_id)
        if token is None or (owner is not None and token.user.username != owner):
            raise NotFound(_("There is no API token %(token_id)s of %(user)s.", token_id=token_id, user=owner) if owner
                           else _("There is no API token %(token_id)s.", token_id=token_id), code="token_not_found")
        if token.revoked_at is None:
            token.revoked_at = engine.clock()
            token.revoked_by = by
    return token


def user_id_of_token(engine: Engine, secret: str) -> int | None:
    """The id of the active user a valid (not revoked, not expired) token belongs to;
    None for anything else."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = engine.clock()
    with engine.reading() as session:
        row = readmodel.valid_token(session, hash_token(secret), now)
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_GRANULARITY:
        with engine.transaction() as session:
            readmodel.mark_token_used(session, row.id, now)
    return row.user_id
