"""The engine's deliberate errors as HTTP answers with a page that says what happened, in
the reader's language. Nothing a user can do ends in a 500: a lost race is a 409 with the reason."""

from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import Conflict, NotAuthorized, NotFound
from webui.i18n import local


def init_app(app) -> None:
    @app.errorhandler(NotFound)
    def not_found(error):
        return render_template("error.html", title=_("Not found"), message=local(error)), 404

    @app.errorhandler(NotAuthorized)
    def not_authorized(error):
        return render_template("error.html", title=_("Not allowed"), message=local(error)), 403

    @app.errorhandler(Conflict)
    def conflict(error):
        return render_template("error.html", title=_("Someone was quicker"), message=local(error)), 409

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        message = _("The form has expired or did not come from this site (%(reason)s). Go back, reload it and "
                    "submit again.", reason=error.description)
        return render_template("error.html", title=_("Form expired"), message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        titles = {403: _("Not allowed"), 404: _("Not found"), 405: _("Not allowed")}
        messages = {
            403: _("Your role does not give access to this page."),
            404: _("There is no such page."),
        }
        title = titles.get(error.code, error.name)
        return render_template("error.html", title=title, message=messages.get(error.code, error.description)), \
            error.code
