"""A person's own REST API tokens: make one (its secret is shown once), see them, revoke one."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from engine.errors import NotFound
from webui.access import engine, role_required
from webui.api import tokens as token_store

bp = Blueprint("tokens", __name__, url_prefix="/settings/tokens")
LIFETIMES = {"30": 30, "90": 90, "365": 365, "never": None}  # days


def _page(issued=None, error: str | None = None, values: dict | None = None, status: int = 200):
    mine = token_store.tokens(engine(), current_user.username)
    return render_template("tokens/index.html", tokens=mine, issued=issued, error=error, values=values or {},
                           lifetimes=LIFETIMES), status


@bp.route("/")
@role_required()
def index():
    return _page()


@bp.route("/", methods=["POST"])
@role_required()
def create():
    name = request.form.get("name", "")
    lifetime = request.form.get("lifetime", "90")
    if lifetime not in LIFETIMES:
        return _page(error=_("Choose how long the token lasts."), values=request.form, status=422)
    days = LIFETIMES[lifetime]
    expires_at = engine().clock() + timedelta(days=days) if days else None
    try:
        issued = token_store.create_token(engine(), current_user.username, name, expires_at)
    except ValueError:
        return _page(error=_("Give the token a name of at most 100 characters, e.g. where it is used."),
                     values=request.form, status=422)
    # Shown on this page only: a redirect would have to carry the secret in the session cookie.
    return _page(issued=issued)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@role_required()
def revoke(token_id: int):
    try:
        token = token_store.revoke_token(engine(), token_id, by=current_user.username, owner=current_user.username)
    except NotFound:
        flash(_("There is no such token of yours."), "error")
    else:
        flash(_("Revoked the token “%(name)s”: it no longer opens the API.", name=token.name), "success")
    return redirect(url_for("tokens.index"))
