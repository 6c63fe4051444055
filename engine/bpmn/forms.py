"""Checking what a person submits against the step's ``camunda:formData``.

The form is the contract of a step: only its fields are accepted (so no one can slip
``classified=true`` past a stage gate through the API), each value is converted to the
field's type, and Camunda's validation constraints are enforced. Every problem is
reported against its field, all at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from SpiffWorkflow.camunda.specs.user_task import EnumFormField, Form, FormField

from engine.errors import FieldError, InvalidFormData, InvalidValue
from engine.texts import _, ngettext

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no", ""}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y")


@dataclass(frozen=True)
class FieldSpec:
    """A form field as the UI and the API describe it."""

    id: str
    type: str
    label: str
    required: bool
    readonly: bool
    default: Any
    options: tuple[tuple[str, str], ...]  # (id, label) of an enum
    constraints: dict[str, str]


def form_fields(form: Form | None) -> list[FieldSpec]:
    if form is None:
        return []
    return [_field_spec(field) for field in form.fields]


def _field_spec(field: FormField) -> FieldSpec:
    constraints = {v.name: v.config for v in field.validation}
    options = tuple((o.id, o.name or o.id) for o in field.options) if isinstance(field, EnumFormField) else ()
    return FieldSpec(
        id=field.id,
        type=field.type or "string",
        label=field.label or field.id,
        required="required" in constraints,
        readonly="readonly" in constraints,
        default=field.default_value,
        options=options,
        constraints=constraints,
    )


def clean_submission(task_name: str, form: Form | None, submitted: dict[str, Any]) -> dict[str, Any]:
    """Typed values for the task data, or InvalidFormData listing every bad field."""
    fields = {f.id: f for f in form_fields(form)}
    errors: dict[str, FieldError] = {}
    for name in submitted:
        if name not in fields:
            errors[name] = FieldError("unknown_field", _("is not a field of this step's form"))
    clean: dict[str, Any] = {}
    for field in fields.values():
        if field.readonly:
            if field.id in submitted and submitted[field.id] not in (None, "", field.default):
                errors[field.id] = FieldError("read_only", _("is read-only"))
            continue
        try:
            value = _convert(field, submitted.get(field.id))
            if value is None and field.default not in (None, "") and field.id not in submitted:
                value = _convert(field, field.default)
            _check_constraints(field, value)
        except InvalidValue as bad:
            errors[field.id] = bad.problem
            continue
        clean[field.id] = value
    if errors:
        raise InvalidFormData(task_name, errors)
    return clean


def _convert(field: FieldSpec, raw: Any) -> Any:
    if isinstance(raw, str):
        raw = raw.strip()
    if field.type == "boolean":
        return _to_bool(raw)
    if raw is None or raw == "":
        return None
    if field.type == "long":
        return _to_int(raw)
    if field.type == "date":
        return _to_date(raw)
    if field.type == "enum":
        allowed = [option_id for option_id, _ in field.options]
        if str(raw) not in allowed:
            raise InvalidValue(FieldError("not_an_option", _("must be one of %(options)s", options=allowed)))
        return str(raw)
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        raise InvalidValue(FieldError("not_text", _("must be text")))
    return str(raw)


_NOT_WHOLE = FieldError("not_a_whole_number", _("must be a whole number"))


def _to_bool(raw: Any) -> bool:
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    if str(raw).lower() in _TRUE:
        return True
    if str(raw).lower() in _FALSE:
        return False
    raise InvalidValue(FieldError("not_yes_or_no", _("must be yes or no")))


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise InvalidValue(_NOT_WHOLE)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"[+-]?\d{1,18}", raw.replace(" ", "").replace("\u00a0", "")):
        return int(raw.replace(" ", "").replace("\u00a0", ""))
    raise InvalidValue(_NOT_WHOLE)


def _to_date(raw: Any) -> date:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(str(raw), fmt).date()
        except ValueError:
            continue
    raise InvalidValue(FieldError("not_a_date", _("must be a date such as %(example)s", example="2026-12-31")))


def _check_constraints(field: FieldSpec, value: Any) -> None:
    c = field.constraints
    if field.required and (value is None or value == "" or (field.type == "boolean" and value is not True)):
        raise InvalidValue(FieldError("must_be_checked", _("must be checked")) if field.type == "boolean"
                       else FieldError("required", _("is required")))
    if value is None:
        return
    if "minlength" in c and len(str(value)) < int(c["minlength"]):
        minimum = int(c["minlength"])
        raise InvalidValue(FieldError("too_short", ngettext("must be at least %(num)d character",
                                                        "must be at least %(num)d characters", minimum)))
    if "maxlength" in c and len(str(value)) > int(c["maxlength"]):
        maximum = int(c["maxlength"])
        raise InvalidValue(FieldError("too_long", ngettext("must be at most %(num)d character",
                                                       "must be at most %(num)d characters", maximum)))
    if "min" in c and value < _bound(field, c["min"]):
        raise InvalidValue(FieldError("too_small", _("must be at least %(min)s", min=c["min"])))
    if "max" in c and value > _bound(field, c["max"]):
        raise InvalidValue(FieldError("too_large", _("must be at most %(max)s", max=c["max"])))


def _bound(field: FieldSpec, config: str) -> Any:
    return _to_date(config) if field.type == "date" else _to_int(config)


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """The submitted values as plain JSON, for the work item's record."""
    return {k: v.isoformat() if isinstance(v, (date, datetime)) else v for k, v in values.items()}
