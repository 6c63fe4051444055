"""Normalised keys of a customer for the duplicate check (D2), and the checks of the raw values.

Two records are likely the same customer when they share a normalised name, an INN, a
phone number or an e-mail address. Normalising makes "ООО «Ромашка»" and "Ромашка, ООО"
the same name, and "8 (495) 123-45-67" and "+7 495 1234567" the same phone.
"""

from __future__ import annotations

import re

from engine.errors import FieldError, InvalidValue
from processes.texts import _, ngettext

# Legal forms that do not distinguish one organisation from another (Russian, Latvian, English).
LEGAL_FORMS = {
    "ооо", "оао", "зао", "пао", "ао", "нао", "ип", "чп", "тоо", "нко", "гуп", "муп", "фгуп",
    "sia", "as", "ik", "llc", "ltd", "inc", "gmbh", "oy", "ab", "co", "corp", "plc",
    "общество", "с", "ограниченной", "ответственностью", "индивидуальный", "предприниматель",
}
_WORD = re.compile(r"[0-9a-zа-я]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normal_name(name: str) -> str:
    words = _WORD.findall(name.lower().replace("ё", "е"))
    kept = [word for word in words if word not in LEGAL_FORMS]
    return " ".join(kept or words)


def normal_phone(phone: str) -> str:
    """Digits only, Russian numbers in their international form (7 and ten digits).
    Raises InvalidValue (a ValueError) for something that cannot be a phone number."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    elif len(digits) == 10 and digits.startswith("9"):
        digits = "7" + digits  # a Russian mobile written without the country code
    if not 6 <= len(digits) <= 15:
        raise InvalidValue(FieldError("not_a_phone", ngettext("%(value)s is not a phone number (it has %(num)d digit)",
                                                              "%(value)s is not a phone number (it has %(num)d digits)",
                                                              len(digits), value=repr(phone))))
    return digits


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
