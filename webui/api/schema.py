"""The JSON Schema subset the API is described in, and the checker of requests against it.

The OpenAPI document (``/api/v1/openapi.json``) and the request checks are built from the
same schema values, so what the document promises is what the server enforces. The
subset: object (properties, required, additionalProperties), array (items, maxItems),
string (minLength, maxLength, enum, format date-time/date), integer and number (minimum,
maximum), boolean, ``nullable`` (OpenAPI 3.0) and ``$ref`` to the document's components.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

Schema = dict[str, Any]

REF_PREFIX = "#/components/schemas/"
# PostgreSQL's integer: an id beyond it cannot exist, and a larger bind is an error.
MAX_ID = 2**31 - 1
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def string(max_length: int, *, min_length: int = 0, enum: tuple[str, ...] | None = None, format: str | None = None,
           nullable: bool = False, description: str | None = None, example: Any = None) -> Schema:
    schema: Schema = {"type": "string"}
    if enum is not None:
        schema["enum"] = list(enum) + ([None] if nullable else [])
    else:
        schema["maxLength"] = max_length
        if min_length:
            schema["minLength"] = min_length
    if format:
        schema["format"] = format
    return _common(schema, nullable, description, example)


def integer(*, minimum: int | None = None, maximum: int | None = None, nullable: bool = False,
            description: str | None = None, example: Any = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return _common(schema, nullable, description, example)


def identifier(description: str | None = None, nullable: bool = False) -> Schema:
    return integer(minimum=1, maximum=MAX_ID, nullable=nullable, description=description)


def number(*, minimum: float | None = None, maximum: float | None = None, nullable: bool = False,
           description: str | None = None) -> Schema:
    schema: Schema = {"type": "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return _common(schema, nullable, description, None)


def boolean(description: str | None = None, nullable: bool = False) -> Schema:
    return _common({"type": "boolean"}, nullable, description, None)


def array(items: Schema, *, max_items: int | None = None, description: str | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    return _common(schema, False, description, None)


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (), additional: bool | Schema = False,
        nullable: bool = False, description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": additional}
    if required:
        schema["required"] = list(required)
    return _common(schema, nullable, description, None)


def free_object(description: str) -> Schema:
    """Any JSON object: process variables, form values, a history event's detail."""
    return {"type": "object", "additionalProperties": True, "description": description}


def ref(name: str, nullable: bool = False) -> Schema:
    if nullable:  # OpenAPI 3.0 ignores siblings of $ref
        return {"allOf": [{"$ref": REF_PREFIX + name}], "nullable": True}
    return {"$ref": REF_PREFIX + name}


def _common(schema: Schema, nullable: bool, description: str | None, example: Any) -> Schema:
    if nullable:
        schema["nullable"] = True
    if description:
        schema["description"] = description
    if example is not None:
        schema["example"] = example
    return schema


class Checker:
    """Checks a decoded JSON value against a schema: returns the converted value and a
    message per field (``contacts[1].name``) for everything wrong, all at once."""

    def __init__(self, components: dict[str, Schema]):
        self.components = components

    def check(self, schema: Schema, value: Any, where: str = "") -> tuple[Any, dict[str, str]]:
        errors: dict[str, str] = {}
        return self._check(schema, value, where, errors), errors

    def _check(self, schema: Schema, value: Any, where: str, errors: dict[str, str]) -> Any:
        schema = self._resolve(schema)
        if value is None:
            if not schema.get("nullable"):
                errors[where or "body"] = "must not be null"
            return None
        kind = schema.get("type")
        if kind == "object":
            return self._object(schema, value, where, errors)
        if kind == "array":
            if not isinstance(value, list):
                errors[where or "body"] = "must be a list"
                return None
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                errors[where] = f"must have at most {schema['maxItems']} entries"
            return [self._check(schema["items"], entry, f"{where}[{index + 1}]", errors)
                    for index, entry in enumerate(value)]
        if kind == "string":
            return self._string(schema, value, where, errors)
        if kind in ("integer", "number"):
            return self._number(schema, kind, value, where, errors)
        if kind == "boolean":
            if not isinstance(value, bool):
                errors[where] = "must be true or false"
            return value
        return value  # no type: anything JSON

    def _resolve(self, schema: Schema) -> Schema:
        if "$ref" in schema:
            return self.components[schema["$ref"].removeprefix(REF_PREFIX)]
        if "allOf" in schema:  # the nullable reference written by ref()
            return {**self.components[schema["allOf"][0]["$ref"].removeprefix(REF_PREFIX)],
                    "nullable": schema.get("nullable", False)}
        return schema

    def _object(self, schema: Schema, value: Any, where: str, errors: dict[str, str]) -> Any:
        if not isinstance(value, dict):
            errors[where or "body"] = "must be a JSON object"
            return None
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties", True)
        clean = {}
        for name, entry in value.items():
            path = f"{where}.{name}" if where else name
            if name in properties:
                clean[name] = self._check(properties[name], entry, path, errors)
            elif additional is False:
                errors[path] = "is not a known field"
            else:
                if isinstance(additional, dict):
                    entry = self._check(additional, entry, path, errors)
                clean[name] = _without_nul(entry, path, errors)
        for name in schema.get("required", []):
            if name not in value:
                errors[f"{where}.{name}" if where else name] = "is required"
        return clean

    @staticmethod
    def _string(schema: Schema, value: Any, where: str, errors: dict[str, str]) -> Any:
        if not isinstance(value, str):
            errors[where] = "must be a string"
            return value
        if "\x00" in value:
            errors[where] = "must not contain NUL characters"
            return value
        if "enum" in schema and value not in schema["enum"]:
            errors[where] = "must be one of " + ", ".join(str(v) for v in schema["enum"] if v is not None)
            return value
        if len(value) > schema.get("maxLength", len(value)):
            errors[where] = f"must be at most {schema['maxLength']} characters"
        elif len(value) < schema.get("minLength", 0):
            errors[where] = "is required" if not value else f"must be at least {schema['minLength']} characters"
        fmt = schema.get("format")
        if fmt == "date-time":
            moment = parse_date_time(value)
            if moment is None:
                errors[where] = "must be a date and time with its offset, like 2026-11-23T09:00:00+03:00"
            return moment
        if fmt == "date":
            day = parse_date(value)
            if day is None:
                errors[where] = "must be a date like 2026-11-23"
            return day
        return value

    @staticmethod
    def _number(schema: Schema, kind: str, value: Any, where: str, errors: dict[str, str]) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors[where] = f"must be {'a whole number' if kind == 'integer' else 'a number'}"
            return value
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                errors[where] = "must be a whole number"
                return value
            value = int(value)
        if "minimum" in schema and value < schema["minimum"]:
            errors[where] = f"must be at least {schema['minimum']}"
        elif "maximum" in schema and value > schema["maximum"]:
            errors[where] = f"must be at most {schema['maximum']}"
        return value


def _without_nul(value: Any, where: str, errors: dict[str, str]) -> Any:
    """Free-form values (process variables) may hold anything JSON but NUL characters,
    which no database stores in text."""
    if isinstance(value, str) and "\x00" in value:
        errors[where] = "must not contain NUL characters"
    elif isinstance(value, dict):
        for key, entry in value.items():
            _without_nul(key, where, errors)
            _without_nul(entry, f"{where}.{key}", errors)
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            _without_nul(entry, f"{where}[{index + 1}]", errors)
    return value


def parse_date_time(text: str) -> datetime | None:
    """An RFC 3339 date-time (always with its offset) as an aware datetime, else None.
    Fractions beyond microseconds are cut; a leap second is read as :59."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    day, clock, fraction, offset = match.groups()
    if clock.endswith(":60"):
        clock = clock[:-2] + "59"
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def query_value(schema: Schema, raw: str) -> Any:
    """A query parameter's text as the type its schema names (left as text when it does
    not convert, so that the check names the problem)."""
    kind = schema.get("type")
    if kind == "integer":
        return int(raw) if re.fullmatch(r"[+-]?\d{1,12}", raw, re.ASCII) else raw
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(raw.lower(), raw)
    return raw
