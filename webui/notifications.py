"""In-app notifications (deadline escalations and the like, written by the engine's
escalation work): the unread count in the top bar, the list, marking them read."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user
from wtforms import SelectMultipleField

from engine.outbox.notifications import Inbox
from webui.access import engine, role_required
from webui.fields import WebForm

bp = Blueprint("notifications", __name__, url_prefix="/notifications")
PAGE_SIZE = 50


def init_app(app) -> None:
    @app.context_processor
    def unread_notifications():
        if not current_user.is_authenticated:
            return {}
        return {"unread_notifications": Inbox(engine()).unread_count(current_user.username)}


@bp.route("/")
@role_required()
def index():
    notifications = Inbox(engine()).notifications(current_user.username, limit=PAGE_SIZE)
    return render_template("notifications.html", notifications=notifications)


class MarkReadForm(WebForm):
    """The notifications to mark read; none listed is all of them."""

    id = SelectMultipleField(coerce=int, validate_choice=False)


@bp.route("/read", methods=["POST"])
@role_required()
def mark_read():
    """Mark the listed notifications read (all of them without ids): only the user's own.
    Ids that are no numbers mark nothing."""
    form = MarkReadForm()
    if not form.id.process_errors:
        Inbox(engine()).mark_read(current_user.username, form.id.data or None)
    return redirect(url_for("notifications.index"))
