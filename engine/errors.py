"""The errors the engine raises on purpose. Each says what is wrong and where, in
words the person who caused it can act on; the web UI and the API map them to status
codes (``Conflict`` to 409, ``NotFound`` to 404, ``NotAuthorized`` to 403, the rest to 400/422).

Every error carries a stable ``code`` (for programs: the API returns it), its ``params``
and a translatable ``text`` (``engine.texts``): the web UI and the API render it in the
reader's language, ``str(error)`` is the English sentence for logs and the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.texts import Listing, Text, _


class CrmflowError(Exception):
    """Base class of every deliberate error. ``text`` may be a plain string: a message
    that is not translated (a script's own error), shown as it is."""

    code = "error"

    def __init__(self, text: Text | str, *, code: str | None = None):
        self.text = text if isinstance(text, Text) else Text.literal(text)
        if code is not None:
            self.code = code
        super().__init__(str(self.text))

    @property
    def params(self) -> dict[str, Any]:
        return self.text.arguments("en")

    def render(self, locale: Any = None) -> str:
        return self.text.render(locale)


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field of a form: a stable ``code`` and the text shown beside it."""

    code: str
    text: Text

    @classmethod
    def of(cls, value: FieldError | Text | str) -> FieldError:
        """A field error from a plain message too (code ``invalid``, shown as it is)."""
        if isinstance(value, FieldError):
            return value
        return cls("invalid", value if isinstance(value, Text) else Text.literal(str(value)))

    @property
    def params(self) -> dict[str, Any]:
        return self.text.arguments("en")

    def render(self, locale: Any = None) -> str:
        return self.text.render(locale)

    def __str__(self) -> str:
        return str(self.text)


class InvalidValue(ValueError):
    """A value that does not fit where it goes, saying why as a ``FieldError`` (the caller
    knows the field)."""

    def __init__(self, problem: FieldError):
        super().__init__(str(problem))
        self.problem = problem


def field_errors(errors: Mapping[str, FieldError | Text | str]) -> dict[str, FieldError]:
    return {name: FieldError.of(problem) for name, problem in errors.items()}


def listed(errors: Mapping[str, FieldError]) -> list[Text]:
    """Each field with what is wrong with it ("discount: must be at most 50"), for a sentence."""
    return [_("%(field)s: %(problem)s", field=name, problem=problem.text) for name, problem in errors.items()]


class NotFound(CrmflowError):
    code = "not_found"


class UnknownUser(NotFound):
    code = "unknown_user"

    def __init__(self, username: str):
        super().__init__(_("There is no crmflow user called '%(username)s'.", username=username))
        self.username = username


class WorkItemNotFound(NotFound):
    code = "work_item_not_found"

    def __init__(self, item_id: int):
        super().__init__(_("There is no work item %(item_id)s.", item_id=item_id))
        self.item_id = item_id


class InstanceNotFound(NotFound):
    code = "instance_not_found"

    def __init__(self, instance_id: int):
        super().__init__(_("There is no process instance %(instance_id)s.", instance_id=instance_id))
        self.instance_id = instance_id


class NotAuthorized(CrmflowError):
    code = "not_authorized"


class NotACandidate(NotAuthorized):
    code = "not_a_candidate"

    def __init__(self, username: str, item_id: int, item_name: str):
        super().__init__(_("%(user)s is not a candidate for work item %(item_id)s (%(item)s).",
                           user=username, item_id=item_id, item=item_name))


class InactiveUser(NotAuthorized):
    code = "inactive_user"

    def __init__(self, username: str):
        super().__init__(_("%(user)s is no longer active and cannot receive work.", user=username))
        self.username = username


class Conflict(CrmflowError):
    """Someone else changed the thing first: reload and decide again."""

    code = "conflict"


class StaleWorkItem(Conflict):
    code = "stale_work_item"

    def __init__(self, item_id: int, expected: int, actual: int):
        super().__init__(_("Work item %(item_id)s has changed since you opened it (version %(expected)s, now "
                           "%(actual)s): reload it to see who changed what.",
                           item_id=item_id, expected=expected, actual=actual))
        self.item_id, self.expected, self.actual = item_id, expected, actual


class WorkItemClosed(Conflict):
    """The item is no longer open to the caller: ``status`` is completed, cancelled,
    assigned (to ``by``), or why the process no longer waits for it."""

    code = "work_item_closed"

    def __init__(self, item_id: int, status: str, by: str | None):
        super().__init__(_closed_text(item_id, status, by))
        self.item_id, self.status, self.by = item_id, status, by


ASSIGNED = "assigned"
NO_LONGER_ACTIVE = "no longer active in its process"


def _closed_text(item_id: int, status: str, by: str | None) -> Text:
    if status == "completed":
        return (_("Work item %(item_id)s is already completed by %(by)s.", item_id=item_id, by=by) if by
                else _("Work item %(item_id)s is already completed.", item_id=item_id))
    if status == "cancelled":
        return (_("Work item %(item_id)s is already cancelled by %(by)s.", item_id=item_id, by=by) if by
                else _("Work item %(item_id)s is already cancelled.", item_id=item_id))
    if status == ASSIGNED:
        return _("Work item %(item_id)s is already assigned to %(by)s.", item_id=item_id, by=by)
    if status == NO_LONGER_ACTIVE:
        return _("Work item %(item_id)s is no longer active in its process.", item_id=item_id)
    return _("Work item %(item_id)s is no longer open (%(status)s).", item_id=item_id, status=status)


class InvalidFormData(CrmflowError):
    """The submitted values do not fit the step's form; ``errors`` maps field id to a
    ``FieldError``."""

    code = "invalid_form_data"

    def __init__(self, task_name: str, errors: Mapping[str, FieldError | Text | str]):
        self.errors = field_errors(errors)
        super().__init__(_("The form of '%(task)s' has invalid values: %(fields)s", task=task_name,
                           fields=Listing(listed(self.errors), "; ")))
        self.task_name = task_name


class ProcessNotDeployed(NotFound):
    code = "process_not_deployed"

    def __init__(self, key: str):
        super().__init__(_("No process with key '%(key)s' is deployed. Deploy its BPMN file first.", key=key))
        self.key = key


class ProcessFailed(CrmflowError):
    """A step of the process itself failed (a script, a condition, an expression):
    nothing was saved, and the message names the BPMN element."""

    code = "process_failed"


class MessageNotDelivered(CrmflowError):
    """No instance waits for the message, no process starts with it, and whoever sent it
    asked for it not to be kept."""

    code = "message_not_delivered"
