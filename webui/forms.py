"""A step's BPMN form (``camunda:formData``) as HTML inputs, and the engine's field
messages in the reader's language."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine.bpmn.forms import FieldSpec
from engine.errors import FieldError
from webui.i18n import local, sentence

INPUT_TYPES = {"string": "text", "long": "number", "date": "date", "boolean": "checkbox", "enum": "select"}


def submitted_values(fields: list[FieldSpec], form) -> dict[str, Any]:
    """The values of the step's own fields from a POSTed form. An unchecked checkbox is
    absent from a POST, which the engine reads as "no"."""
    values: dict[str, Any] = {}
    for field in fields:
        if field.readonly:
            continue
        if field.id in form:
            values[field.id] = form.get(field.id)
    return values


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
