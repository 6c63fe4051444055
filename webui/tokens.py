"""A person's own REST API tokens: make one (its secret is shown once), see them, revoke one."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import current_user
from wtforms import SelectChoice, SelectField, StringField

from engine.errors import CrmflowError, NotFound
from webui.access import engine, role_required
from webui.api import tokens as token_store
from webui.errors import show_refusal
from webui.fields import WebForm, at_most, required

bp = Blueprint("tokens", __name__, url_prefix="/settings/tokens")
LIFETIMES = {"30": 30, "90": 90, "365": 365, "never": None}  # days
NAME_HINT = lazy_gettext("Give the token a name of at most 100 characters, e.g. where it is used.")


class TokenForm(WebForm):
    name = StringField(lazy_gettext("Name"), [required(NAME_HINT), at_most(token_store.MAX_NAME_LENGTH, NAME_HINT)])
    lifetime = SelectField(lazy_gettext("Valid for"), default="90")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lifetime.choices = [SelectChoice(key, ngettext("%(num)d day", "%(num)d days", days) if days
                                              else _("No expiry")) for key, days in LIFETIMES.items()]


def _page(form: TokenForm | None = None, issued=None, status: int = 200):
    mine = token_store.tokens(engine(), current_user.username)
    return render_template("tokens/index.html", tokens=mine, issued=issued, form=form or TokenForm(formdata=None)), \
        status


@bp.route("/")
@role_required()
def index():
    return _page()


@bp.route("/", methods=["POST"])
@role_required()
def create():
    form = TokenForm()
    if not form.validate():
        return _page(form, status=422)
    days = LIFETIMES[form.lifetime.data]
    expires_at = engine().clock() + timedelta(days=days) if days else None
    try:
        issued = token_store.create_token(engine(), current_user.username, form.name.data, expires_at)
    except ValueError:
        form.name.errors.append(NAME_HINT)
        return _page(form, status=422)
    except CrmflowError as refused:
        return _page(form, status=show_refusal(form, refused))
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
