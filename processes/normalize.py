"""Normalised keys of a customer for the duplicate check (D2), and the checks of the raw values.

Two records are likely the same customer when they share a normalised name, an INN, a
phone number or an e-mail address. Normalising makes "ООО «Ромашка»" and "Ромашка, ООО"
the same name, and "8 (495) 123-45-67" and "+7 495 1234567" the same phone (phonenumbers,
Google's libphonenumber, knows every country's numbering plan).
"""

from __future__ import annotations

import re

import phonenumbers

from engine.errors import FieldError, InvalidValue
from processes.texts import _

# Legal forms that do not distinguish one organisation from another (Russian, Latvian, English).
LEGAL_FORMS = {
    "ооо", "оао", "зао", "пао", "ао", "нао", "ип", "чп", "тоо", "нко", "гуп", "муп", "фгуп",
    "sia", "as", "ik", "llc", "ltd", "inc", "gmbh", "oy", "ab", "co", "corp", "plc",
    "общество", "с", "ограниченной", "ответственностью", "индивидуальный", "предприниматель",
}
# Numbers written without a country code are Russian.
DEFAULT_REGION = "RU"
_WORD = re.compile(r"[0-9a-zа-я]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normal_name(name: str) -> str:
    words = _WORD.findall(name.lower().replace("ё", "е"))
    kept = [word for word in words if word not in LEGAL_FORMS]
    return " ".join(kept or words)


def normal_phone(phone: str) -> str:
    """The number in E.164 without its "+" ("8 (495) 123-45-67 доб. 12" -> "74951234567"),
    the form the phone keys have always had. A number without a country code is Russian
    (8 is the trunk prefix, 8 10 the international one); an extension is not part of the
    number. Raises InvalidValue (a ValueError) naming the value for anything that is not a
    valid number."""
    try:
        number = phonenumbers.parse(phone, DEFAULT_REGION)
    except phonenumbers.NumberParseException as problem:
        raise _not_a_phone(phone, _PARSE_PROBLEMS[problem.error_type]) from None
    if not phonenumbers.is_valid_number(number):
        raise _not_a_phone(phone, _invalid_because(number))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def _not_a_phone(phone: str, reason) -> InvalidValue:
    return InvalidValue(FieldError("not_a_phone", _("%(value)s is not a phone number (%(reason)s)",
                                                    value=repr(phone), reason=reason)))


_PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: _("no country has the code after the +"),
    phonenumbers.NumberParseException.NOT_A_NUMBER: _("it has no digits of a number"),
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: _("too few digits after the international prefix"),
    phonenumbers.NumberParseException.TOO_SHORT_NSN: _("too few digits"),
    phonenumbers.NumberParseException.TOO_LONG: _("too many digits"),
}


def _invalid_because(number: phonenumbers.PhoneNumber):
    reason = phonenumbers.is_possible_number_with_reason(number)
    country = f"+{number.country_code}"
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return _("a city number needs its area code")
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        return _("too few digits for %(country)s", country=country)
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        return _("too many digits for %(country)s", country=country)
    if reason == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        return _("no country has this code")
    if reason == phonenumbers.ValidationResult.INVALID_LENGTH:
        return _("a wrong number of digits for %(country)s", country=country)
    return _("no such number range in %(country)s", country=country)


def normal_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise InvalidValue(FieldError("not_an_email", _("%(value)s is not an e-mail address", value=repr(email))))
    return value


_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights)) % 11 % 10


def normal_inn(inn: str) -> str:
    """A Russian tax id: 10 digits (organisation) or 12 (person, sole trader), with valid
    check digits. Raises InvalidValue (a ValueError) saying what is wrong."""
    value = re.sub(r"\s", "", inn)
    if not value.isdigit() or len(value) not in (10, 12):
        raise InvalidValue(FieldError("inn_length", _("INN %(value)s must be 10 digits (organisation) or 12 digits "
                                                      "(person)", value=repr(inn))))
    if len(value) == 10:
        valid = _check_digit(value, _INN10_WEIGHTS) == int(value[9])
    else:
        valid = (_check_digit(value, _INN12_WEIGHTS_1) == int(value[10])
                 and _check_digit(value, _INN12_WEIGHTS_2) == int(value[11]))
    if not valid:
        raise InvalidValue(FieldError("inn_check_digit", _("INN %(value)s has a wrong check digit (mistyped?)",
                                                           value=repr(inn))))
    return value


def complete_inn(prefix: str) -> str:
    """A valid INN from its first 9 (organisation) or 10 (person) digits: for demo data and tests."""
    if len(prefix) == 9:
        return prefix + str(_check_digit(prefix, _INN10_WEIGHTS))
    if len(prefix) == 10:
        eleven = prefix + str(_check_digit(prefix, _INN12_WEIGHTS_1))
        return eleven + str(_check_digit(eleven, _INN12_WEIGHTS_2))
    raise ValueError("give 9 digits for an organisation's INN or 10 for a person's")
