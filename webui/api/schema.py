"""The JSON Schema subset the API is described in, and the check of requests against it
by jsonschema.

The OpenAPI document (``/api/v1/openapi.json``) and the request checks are built from the
same schema values, so what the document promises is what the server enforces. The
subset: object (properties, required, additionalProperties), array (items, maxItems),
string (minLength, maxLength, enum, format date-time/date), integer and number (minimum,
maximum), boolean, ``nullable`` (OpenAPI 3.0) and ``$ref`` to the document's components.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from jsonschema import Draft4Validator, Draft6Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

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
    """Checks a decoded JSON value against a schema with jsonschema: returns the converted
    value (date-times and dates parsed, whole numbers as int) and a message per field
    (``contacts[1].name``) for everything wrong, all at once.

    The schemas are OpenAPI 3.0's dialect of JSON Schema draft 4; what jsonschema does not
    know of it is added by ``_OPENAPI_VALIDATOR``: ``nullable``, and a whole number written
    as ``5.0`` being an integer (as it is in JSON Schema since draft 6). No text anywhere
    may hold a NUL character, which no database stores in text."""

    def __init__(self, components: dict[str, Schema]):
        self.components = components
        self._validators: dict[int, tuple[Schema, Any]] = {}

    def check(self, schema: Schema, value: Any, where: str = "") -> tuple[Any, dict[str, str]]:
        found: dict[str, tuple[int, str]] = {}
        errors = self._validator(schema).iter_errors(value)
        for path, rank, message in [*(problem for error in errors for problem in _problems(error)),
                                    *_nul_problems(value, ())]:
            field_name = _field(where, path)
            if field_name not in found or rank < found[field_name][0]:
                found[field_name] = (rank, message)
        if found:
            return None, {field_name: message for field_name, (_, message) in found.items()}
        return self._converted(schema, value), {}

    def _validator(self, schema: Schema):
        cached = self._validators.get(id(schema))
        if cached is None or cached[0] is not schema:
            # The references (#/components/schemas/...) resolve against the document's components.
            root = {"allOf": [schema], "components": {"schemas": self.components}}
            cached = self._validators[id(schema)] = (schema, _OPENAPI_VALIDATOR(root, format_checker=FORMATS))
        return cached[1]

    def _converted(self, schema: Schema, value: Any) -> Any:
        schema = self._resolve(schema)
        if value is None:
            return None
        kind = schema.get("type")
        if kind == "object":
            properties, additional = schema.get("properties", {}), schema.get("additionalProperties", True)
            return {name: self._converted(properties[name], entry) if name in properties
                    else self._converted(additional, entry) if isinstance(additional, dict) else entry
                    for name, entry in value.items()}
        if kind == "array":
            return [self._converted(schema["items"], entry) for entry in value]
        if kind == "integer":
            return int(value)
        if kind == "string" and schema.get("format") == "date-time":
            return parse_date_time(value)
        if kind == "string" and schema.get("format") == "date":
            return parse_date(value)
        return value

    def _resolve(self, schema: Schema) -> Schema:
        if "$ref" in schema:
            return self.components[schema["$ref"].removeprefix(REF_PREFIX)]
        if "allOf" in schema:  # the nullable reference written by ref()
            return self.components[schema["allOf"][0]["$ref"].removeprefix(REF_PREFIX)]
        return schema


# Only the formats the API uses, parsed as strictly as the views parse them.
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time")
def _is_date_time(value: Any) -> bool:
    return not isinstance(value, str) or parse_date_time(value) is not None


@FORMATS.checks("date")
def _is_date(value: Any) -> bool:
    return not isinstance(value, str) or parse_date(value) is not None


def _nullable(keyword: str):
    """A draft 4 keyword that lets ``null`` through where the schema says ``nullable``."""
    check = Draft4Validator.VALIDATORS[keyword]

    def nullable_check(validator, value, instance, schema):
        if instance is None and schema.get("nullable"):
            return
        yield from check(validator, value, instance, schema)

    return nullable_check


_OPENAPI_VALIDATOR = validators.extend(
    Draft4Validator,
    validators={"type": _nullable("type"), "allOf": _nullable("allOf")},
    type_checker=Draft4Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: Draft6Validator.TYPE_CHECKER.is_type(value, "integer")),
)

# Which message a field gets when several checks fail on it: the lowest rank.
_RANKS = {"type": 0, "nul": 1, "enum": 2, "format": 3, "maxLength": 4, "minLength": 5}
_TYPE_MESSAGES = {"object": "must be a JSON object", "array": "must be a list", "string": "must be a string",
                  "integer": "must be a whole number", "number": "must be a number",
                  "boolean": "must be true or false"}
_FORMAT_MESSAGES = {"date-time": "must be a date and time with its offset, like 2026-11-23T09:00:00+03:00",
                    "date": "must be a date like 2026-11-23"}


def _problems(error: ValidationError) -> Iterator[tuple[tuple[Any, ...], int, str]]:
    """(path, rank, message) of each field a jsonschema error is about."""
    path, keyword, expected = tuple(error.absolute_path), error.validator, error.validator_value
    rank = _RANKS.get(keyword, len(_RANKS))
    if keyword == "required":
        for name in expected:
            if name not in error.instance:
                yield (*path, name), rank, "is required"
    elif keyword == "additionalProperties":
        for name in error.instance:
            if name not in error.schema.get("properties", {}):
                yield (*path, name), rank, "is not a known field"
    elif keyword == "type":
        yield path, rank, "must not be null" if error.instance is None else _TYPE_MESSAGES.get(expected, error.message)
    elif keyword == "enum":
        yield path, rank, "must be one of " + ", ".join(str(v) for v in expected if v is not None)
    elif keyword == "format":
        yield path, rank, _FORMAT_MESSAGES.get(expected, f"must be a {expected}")
    elif keyword == "maxLength":
        yield path, rank, f"must be at most {expected} characters"
    elif keyword == "minLength":
        yield path, rank, "is required" if not error.instance else f"must be at least {expected} characters"
    elif keyword == "minimum":
        yield path, rank, f"must be at least {expected}"
    elif keyword == "maximum":
        yield path, rank, f"must be at most {expected}"
    elif keyword == "maxItems":
        yield path, rank, f"must have at most {expected} entries"
    else:
        yield path, rank, error.message


def _nul_problems(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], int, str]]:
    if isinstance(value, str) and "\x00" in value:
        yield path, _RANKS["nul"], "must not contain NUL characters"
    elif isinstance(value, dict):
        for key, entry in value.items():
            if "\x00" in key:  # named by the object that holds it, so as not to echo the NUL
                yield path, _RANKS["nul"], "must not contain NUL characters"
            yield from _nul_problems(entry, (*path, key))
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            yield from _nul_problems(entry, (*path, index))


def _field(where: str, path: tuple[Any, ...]) -> str:
    """``contacts[1].name``: a field's path as the API names it, lists counted from 1."""
    name = where
    for part in path:
        name += f"[{part + 1}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "body"


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
