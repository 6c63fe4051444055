"""What the web UI's HTML forms share: their base class, fields that read what people type
(a date, a time of day, an amount of money, one value a line) and validators with the
UI's own messages, in the reader's language.

The validators say what the browser can be told (required, lengths, dates, numbers,
choices from the domain's own lists): WTForms turns them into HTML attributes and checks
them again on the server. The engine and the CRM facade check their own rules after
that; their refusals are put on the same form by ``webui.errors.show_refusal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, time
from decimal import Decimal, InvalidOperation
from io import SEEK_END
from typing import Any

from flask_babel import gettext as _
from flask_babel import format_decimal, lazy_gettext, ngettext
from flask_wtf import FlaskForm
from wtforms import Field, SelectChoice, StringField, TextAreaField
from wtforms.validators import Length, StopValidation, ValidationError
from wtforms.widgets import DateInput, TimeInput

from webui.errors import value_message
from webui.i18n import DOMAIN_LABELS


class WebForm(FlaskForm):
    """A form of the web UI. It has no CSRF field of its own: ``CSRFProtect``
    (``webui.auth``) has checked every POST before its view runs, from the page's hidden
    ``csrf_token`` or the modeler's ``X-CSRFToken`` header."""

    class Meta:
        csrf = False


class Required:
    """The field needs a value. A value that could not be read (a date that is none)
    keeps the message saying so, rather than being told it is missing."""

    field_flags = {"required": True}

    def __init__(self, message: Any = None):
        self.message = message or lazy_gettext("This field is required.")

    def __call__(self, form, field) -> None:
        if field.process_errors:
            raise StopValidation()
        if field.data is None or field.data == [] or (isinstance(field.data, str) and not field.data.strip()):
            raise StopValidation(self.message)


def required(message: Any = None) -> Required:
    return Required(message)


def at_most(characters: int, message: Any = None) -> Length:
    """No longer than the database column (the CRM facade does not check lengths)."""
    return Length(max=characters, message=message or lazy_gettext("Enter at most %(max)d characters."))


def labelled(codes: Iterable[str], labels: Mapping[str, Any] = DOMAIN_LABELS) -> list[SelectChoice]:
    """Choices of a select: the domain's codes, each with its label in the reader's language."""
    return [SelectChoice(str(code), labels.get(str(code), str(code))) for code in codes]


class Files:
    """At most ``count`` files, each no larger than ``max_bytes``, with a name that fits
    the database (255 characters)."""

    NAME_LENGTH = 255

    def __init__(self, count: int, max_bytes: int):
        self.count, self.max_bytes = count, max_bytes

    def __call__(self, form, field) -> None:
        files = field.data or []
        if len(files) > self.count:
            raise ValidationError(ngettext("Attach at most %(num)d file.", "Attach at most %(num)d files.",
                                           self.count))
        for upload in files:
            if len(upload.filename) > self.NAME_LENGTH:
                raise ValidationError(_("%(name)s: the name is longer than %(max)d characters.",
                                        name=upload.filename[:40] + "…", max=self.NAME_LENGTH))
            size = upload.stream.seek(0, SEEK_END)
            upload.stream.seek(0)
            if size > self.max_bytes:
                raise ValidationError(_("%(name)s is larger than %(megabytes)d MB.", name=upload.filename,
                                        megabytes=self.max_bytes // 2**20))


class Normalised:
    """Each value passes the domain's own normaliser (``processes.normalize``: an INN, a
    phone, an e-mail), so that the person sees its message next to the field together
    with every other problem of the form, before the CRM facade checks the same again."""

    def __init__(self, normalise: Callable[[str], str]):
        self.normalise = normalise

    def __call__(self, form, field) -> None:
        values = field.data if isinstance(field.data, list) else [field.data]
        for value in values:
            if value:
                try:
                    self.normalise(value)
                except ValueError as problem:
                    raise ValidationError(value_message(problem)) from None


def _typed(valuelist: list[str]) -> str:
    return valuelist[0].strip()


class IsoDateField(Field):
    """A date as ``<input type=date>`` sends it (2026-12-31); empty is None."""

    widget = DateInput()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return self.data.isoformat() if self.data else ""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        typed = _typed(valuelist)
        self.data = None
        if typed:
            try:
                self.data = date.fromisoformat(typed)
            except ValueError:
                raise ValueError(_("%(value)s is not a date", value=typed)) from None


class ClockTimeField(Field):
    """A time of day as ``<input type=time>`` sends it (11:00 or 11:00:30); empty is None."""

    widget = TimeInput()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return self.data.strftime("%H:%M") if self.data else ""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        typed = _typed(valuelist)
        self.data = None
        if typed:
            try:
                self.data = time.fromisoformat(typed)
            except ValueError:
                raise ValueError(_("%(value)s is not a time of day such as 11:00", value=typed)) from None


class AmountField(StringField):
    """An amount of money as people type it: "120 000", "99,50" or "99.50"; empty is None.
    ``largest`` is what its column holds."""

    def __init__(self, label=None, validators=None, *, largest: Decimal, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.largest = largest

    def _value(self) -> str:
        return self.raw_data[0] if self.raw_data else super()._value()

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        typed = _typed(valuelist)
        self.data = None
        if typed:
            try:
                amount = Decimal(typed.replace(" ", "").replace("\u00a0", "").replace(",", "."))
                if not amount.is_finite() or amount < 0:
                    raise InvalidOperation
            except InvalidOperation:
                raise ValueError(_("%(value)s is not an amount of money such as 120 000 or 99,50",
                                   value=typed)) from None
            if amount > self.largest:
                raise ValueError(_("Enter an amount of at most %(max)s.", max=format_decimal(self.largest)))
            self.data = amount


class LinesField(TextAreaField):
    """Several values in one box, one a line (commas separate too): a list of the
    non-empty ones."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(self.data or [])

    def process_data(self, value: Any) -> None:
        self.data = list(value or [])

    def process_formdata(self, valuelist: list[str]) -> None:
        text = valuelist[0] if valuelist else ""
        self.data = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def blank_to_none(value: str | None) -> str | None:
    """A text field left empty (or only spaces) is no value."""
    return (value or "").strip() or None
