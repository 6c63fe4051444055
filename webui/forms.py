"""A step's BPMN form (``camunda:formData``): read from the POST by WTForms, shown as HTML
inputs, and the engine's field messages in the user's language."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask_babel import gettext as _
from wtforms import BooleanField, IntegerField, StringField
from wtforms.form import BaseForm
from wtforms.validators import InputRequired

from engine.bpmn.forms import FieldSpec

INPUT_TYPES = {"string": "text", "long": "number", "date": "date", "boolean": "checkbox", "enum": "select"}


def step_form(fields: list[FieldSpec], formdata=None) -> BaseForm:
    """The step's form as WTForms reads it: the item's ``version`` and every field of the
    step, a checkbox as yes or no and the rest as typed. Converting and checking the
    values is the engine's (its messages are the ones shown), so the fields have no
    validators of their own. A ``BaseForm``: a BPMN field may be called anything,
    ``data`` or ``errors`` too."""
    form = BaseForm([("version", IntegerField(validators=[InputRequired()])),
                     *((field.id, BooleanField() if field.type == "boolean" else StringField()) for field in fields)])
    form.process(formdata)
    return form


def submitted_values(form: BaseForm, fields: list[FieldSpec]) -> dict[str, Any]:
    """The values of the step's own fields that the POST carries. An unchecked checkbox is
    absent from a POST, which the engine reads as "no"; read-only fields are not sent on."""
    return {field.id: form[field.id].data for field in fields
            if not field.readonly and field.id in form and form[field.id].raw_data}


def display_value(field: FieldSpec, values: dict[str, Any]) -> Any:
    """What an input shows: the value just submitted, else the process data, else the default."""
    value = values.get(field.id, field.default)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if field.type == "boolean":
        return str(value).lower() in ("true", "on", "1", "yes")
    return "" if value is None else value


def html_attributes(field: FieldSpec) -> dict[str, str]:
    """HTML hints of the constraints (the server checks them anyway)."""
    c = field.constraints
    attributes = {}
    if field.required and field.type != "boolean":
        attributes["required"] = "required"
    for name in ("minlength", "maxlength"):
        if name in c and field.type == "string":
            attributes[name] = c[name]
    for name in ("min", "max"):
        if name in c and field.type in ("long", "date"):
            attributes[name] = c[name]
    return attributes


_MESSAGES = [
    (re.compile(r"is required$"), lambda m: _("This field is required.")),
    (re.compile(r"must be checked$"), lambda m: _("This box must be checked.")),
    (re.compile(r"must be a whole number$"), lambda m: _("Enter a whole number.")),
    (re.compile(r"must be a date such as .*$"), lambda m: _("Enter a date such as 2026-12-31.")),
    (re.compile(r"must be at least (\S+) characters$"), lambda m: _("Enter at least %(n)s characters.", n=m[1])),
    (re.compile(r"must be at most (\S+) characters$"), lambda m: _("Enter at most %(n)s characters.", n=m[1])),
    (re.compile(r"must be at least (\S+)$"), lambda m: _("Must be at least %(n)s.", n=m[1])),
    (re.compile(r"must be at most (\S+)$"), lambda m: _("Must be at most %(n)s.", n=m[1])),
    (re.compile(r"must be one of (.*)$"), lambda m: _("Choose one of: %(options)s.", options=m[1])),
    (re.compile(r"must be yes or no$"), lambda m: _("Must be yes or no.")),
    (re.compile(r"is read-only$"), lambda m: _("This field cannot be changed.")),
    (re.compile(r"is not a field of this step's form$"), lambda m: _("Not a field of this step.")),
]


def field_message(engine_message: str) -> str:
    for pattern, translate in _MESSAGES:
        match = pattern.search(engine_message)
        if match:
            return translate(match)
    return engine_message
