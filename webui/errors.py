"""The deliberate errors of the engine and the CRM facade on the page that caused them.
Nothing a user can do ends in a 500.

A form's view catches the refusal of the call it made and hands it to ``show_refusal``:
what the refusal says about a field goes beside that field, the rest at the top of the
form, and the view answers with the error's status (``status_of``: 403 not allowed,
404 not found, 409 someone was quicker or a likely duplicate, 422 anything else). The
handlers of ``init_app`` are the safety net for a refusal no view caught: a page that
says what happened, in the reader's language, with the same status.

The engine's and the CRM's messages are turned into text here only (``message``,
``field_messages``, ``value_message``), so every page shows them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from wtforms.form import BaseForm

from engine.errors import Conflict, CrmflowError, InvalidFormData, InvalidValue, NotAuthorized, NotFound
from processes.errors import DuplicateCustomer, InvalidData
from webui.forms import field_message
from webui.i18n import local, local_errors

_STATUS_BY_CLASS = ((NotAuthorized, 403), (NotFound, 404), (Conflict, 409), (DuplicateCustomer, 409))
_TITLES = {403: lazy_gettext("Not allowed"), 404: lazy_gettext("Not found"), 409: lazy_gettext("Someone was quicker"),
           422: lazy_gettext("This cannot be done")}
# How a name of the domain's continues when it names a part of a form's field: "plan line 2"
# (a line of the plan), "attachments[1]" (a file), "contacts[1].phones".
_PART_MARKS = (" ", "[", ".")


def status_of(error: CrmflowError) -> int:
    return next((status for kind, status in _STATUS_BY_CLASS if isinstance(error, kind)), 422)


def message(error: CrmflowError) -> str:
    """The refusal as one text, in the reader's language."""
    return local(error)


def field_messages(error: CrmflowError) -> dict[str, str]:
    """What the refusal says about each field it names (most refusals name none), in the
    reader's language."""
    if isinstance(error, InvalidFormData):
        return {name: field_message(problem) for name, problem in error.errors.items()}
    if isinstance(error, InvalidData):
        return local_errors(error.errors)
    return {}


def value_message(problem: ValueError) -> str:
    """What the domain's normaliser (``processes.normalize``) says about one value, in the
    reader's language."""
    return local(problem.problem) if isinstance(problem, InvalidValue) else str(problem)


def show_refusal(form: BaseForm, error: CrmflowError, aliases: Mapping[str, str] | None = None) -> int:
    """Put ``error`` on ``form``: each field's message beside the field, a message about
    a part of a field ("plan line 2") beside the field with the part named, the others
    and a refusal that names no field at the top (``form.form_errors``). ``aliases`` maps
    a name of the domain's to the form's field where they differ (a task's ``due_at`` is
    typed in ``due_on``). The answer's status."""
    named = field_messages(error)
    for name, text in named.items():
        target = (aliases or {}).get(name, name)
        field = _field_for(form, target)
        if field is None:
            form.form_errors.append(_("%(field)s: %(problem)s", field=name, problem=text))
        elif field.name == target:
            field.errors = [*field.errors, text]
        else:
            field.errors = [*field.errors, _("%(field)s: %(problem)s", field=name, problem=text)]
    if not named:
        form.form_errors.append(message(error))
    return status_of(error)


def _field_for(form: BaseForm, name: str):
    if name in form:
        return form[name]
    return next((field for field in form if name.startswith(field.name)
                 and name[len(field.name):][:1] in _PART_MARKS), None)


def init_app(app) -> None:
    @app.errorhandler(CrmflowError)
    def refused(error: CrmflowError):
        status = status_of(error)
        return render_template("error.html", title=_TITLES[status], message=message(error)), status

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        message = _("The form has expired or did not come from this site (%(reason)s). Go back, reload it and "
                    "submit again.", reason=error.description)
        return render_template("error.html", title=_("Form expired"), message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        titles = {403: _("Not allowed"), 404: _("Not found"), 405: _("Not allowed"), 413: _("Too large")}
        messages = {
            403: _("Your role does not give access to this page."),
            404: _("There is no such page."),
        }
        if error.code == 413:
            messages[413] = _("What you sent is larger than this site accepts (%(megabytes)d MB at once). Go back "
                              "and send smaller or fewer files.", megabytes=app.config["MAX_CONTENT_LENGTH"] // 2**20)
        title = titles.get(error.code, error.name)
        return render_template("error.html", title=title, message=messages.get(error.code, error.description)), \
            error.code
