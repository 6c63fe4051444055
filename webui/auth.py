"""Signing in and out, passwords, and the per-user language."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, lazy_gettext
from flask_babel import gettext as _
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import CSRFProtect, FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import BooleanField, HiddenField, PasswordField, SelectChoice, SelectField, StringField

from webui import readmodel
from webui.access import engine, load_person, person_by_id
from webui.fields import WebForm, required

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
LOCALES = {"ru": "Русский", "en": "English"}
# Checked when the user name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


def hash_password(password: str) -> str:
    """scrypt, as werkzeug does it: salted, memory-hard, with its parameters in the hash."""
    return generate_password_hash(password, method="scrypt")


def init_app(app) -> None:
    csrf.init_app(app)
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = lazy_gettext("Please sign in to see this page.")
    manager.login_message_category = "info"
    manager.session_protection = "strong"

    @manager.user_loader
    def load_user(user_id: str):
        try:
            return person_by_id(int(user_id))
        except ValueError:
            return None

    @app.context_processor
    def layout_values():
        from webui.i18n import Dates

        return {"locales": LOCALES, "dates": Dates(), "page_locale": str(get_locale())}


class LoginForm(FlaskForm):
    username = StringField(lazy_gettext("User name"), validators=[required()])
    password = PasswordField(lazy_gettext("Password"), validators=[required()])
    remember = BooleanField(lazy_gettext("Keep me signed in"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    form = LoginForm()
    if form.validate_on_submit():
        person = _check_credentials(form.username.data.strip(), form.password.data)
        if person is None:
            flash(_("Wrong user name or password."), "error")
        else:
            login_user(person, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")) or url_for(_home_endpoint(person)))
    return render_template("login.html", form=form), 401 if form.is_submitted() else 200


def _check_credentials(username: str, password: str):
    with engine().reading() as session:
        user = readmodel.user_for_sign_in(session, username)
        if user is None or not user.password_hash or not user.active:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(user.password_hash, password):
            return None
        return load_person(session, user)


def _home_endpoint(person) -> str:
    if person.has_role("employee") or not (person.is_manager or person.is_designer):
        return "inbox.index"
    return "board.index" if person.is_manager else "designer.index"


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: ``next=https://evil.example`` must not become an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


class LanguageForm(WebForm):
    """The language switch of the top bar; ``next`` is the page to go back to."""

    locale = SelectField(lazy_gettext("Language"), choices=[SelectChoice(code, name) for code, name in LOCALES.items()])
    next = HiddenField()


@bp.route("/settings/language", methods=["POST"])
@login_required
def language():
    form = LanguageForm()
    if form.validate():
        engine().set_locale(current_user.username, form.locale.data)
    else:
        flash(_("Unknown language %(code)s.", code=form.locale.data or "—"), "error")
    return redirect(_safe_next(form.next.data) or url_for("inbox.index"))
