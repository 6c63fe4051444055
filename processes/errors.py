"""The domain's deliberate errors; like the engine's, each says what is wrong and where,
with a stable code, its parameters and a translatable text (``engine.errors``)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.errors import CrmflowError, FieldError, NotFound, field_errors, listed
from engine.texts import Listing, Text
from processes.texts import _, ngettext


class InvalidData(CrmflowError):
    """Input that does not fit; ``errors`` maps each field to a ``FieldError``. ``what``
    names the record: customer, deal, stage plan, project task, interaction, claim,
    triage or investigation plan."""

    code = "invalid_data"

    def __init__(self, what: str, errors: Mapping[str, FieldError | Text | str]):
        self.what = what
        self.errors = field_errors(errors)
        fields = Listing(listed(self.errors), "; ")
        super().__init__(_invalid_text(what, fields))


def _invalid_text(what: str, fields: Listing) -> Text:
    # One sentence per record rather than one with the record as a parameter: Russian
    # words change with their place in the sentence.
    texts = {
        "customer": _("The customer has invalid values: %(fields)s", fields=fields),
        "deal": _("The deal has invalid values: %(fields)s", fields=fields),
        "stage plan": _("The stage plan has invalid values: %(fields)s", fields=fields),
        "project task": _("The project task has invalid values: %(fields)s", fields=fields),
        "interaction": _("The interaction has invalid values: %(fields)s", fields=fields),
        "claim": _("The claim has invalid values: %(fields)s", fields=fields),
        "triage": _("The triage has invalid values: %(fields)s", fields=fields),
        "investigation plan": _("The investigation plan has invalid values: %(fields)s", fields=fields),
    }
    return texts.get(what) or _("The %(what)s has invalid values: %(fields)s", what=what, fields=fields)


# Field errors several records share.
REQUIRED = FieldError("required", _("is required"))
MUST_CARRY_TIME_ZONE = FieldError("no_time_zone", _("must carry a time zone"))


def one_of(allowed) -> FieldError:
    return FieldError("not_an_option", _("must be one of %(options)s", options=list(allowed)))


def no_such_user(username: str | None, active: bool = False) -> FieldError:
    if active:
        return FieldError("unknown_user", _("there is no active crmflow user %(user)s", user=repr(username)))
    return FieldError("unknown_user", _("there is no crmflow user %(user)s", user=repr(username)))


def record_not_found(what: str, id_: int) -> NotFound:
    """NotFound for a customer, deal or claim (``what``) that does not exist."""
    texts = {
        "customer": _("There is no customer %(id)s.", id=id_),
        "deal": _("There is no deal %(id)s.", id=id_),
        "claim": _("There is no claim %(id)s.", id=id_),
    }
    return NotFound(texts[what], code=f"{what}_not_found")


class DuplicateCustomer(CrmflowError):
    """Registering would create a likely duplicate; register again with ``allow_duplicates``
    to do it deliberately."""

    code = "duplicate_customer"

    def __init__(self, candidates):
        listing = Listing([_("#%(customer_id)s %(name)s (%(reasons)s)", customer_id=c.customer_id, name=c.name,
                             reasons=[reason.text for reason in c.reasons]) for c in candidates], "; ")
        super().__init__(ngettext("A likely duplicate is already registered: %(candidates)s. Check it, or register "
                                  "deliberately as a new customer.",
                                  "Likely duplicates already registered: %(candidates)s. Check them, or register "
                                  "deliberately as a new customer.", len(candidates), candidates=listing))
        self.candidates = candidates
