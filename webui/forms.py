"""A step's BPMN form (``camunda:formData``): read from the POST by WTForms, shown as HTML
inputs, and the engine's field messages in the user's language."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from wtforms import BooleanField, IntegerField, StringField
from wtforms.form import BaseForm
from wtforms.validators import InputRequired

from engine.bpmn.forms import FieldSpec
from engine.errors import FieldError
from webui.i18n import local, sentence

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


def field_message(problem: FieldError) -> str:
    """The engine's message for a field, in the reader's language, as a sentence of its own."""
    return sentence(local(problem))
