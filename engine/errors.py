"""The errors the engine raises on purpose. Each says what is wrong and where, in
words the person who caused it can act on; the web UI and the API map them to status
codes (``Conflict`` to 409, ``NotFound`` to 404, ``NotAuthorized`` to 403, the rest to 400/422)."""

from __future__ import annotations


class CrmflowError(Exception):
    """Base class of every deliberate engine error."""


class NotFound(CrmflowError):
    pass


class UnknownUser(NotFound):
    def __init__(self, username: str):
        super().__init__(f"There is no crmflow user called {username!r}.")
        self.username = username


class NotAuthorized(CrmflowError):
    pass


class Conflict(CrmflowError):
    """Someone else changed the thing first: reload and decide again."""


class StaleWorkItem(Conflict):
    def __init__(self, item_id: int, expected: int, actual: int):
        super().__init__(
            f"Work item {item_id} has changed since you opened it (version {expected}, now {actual}): "
            "reload it to see who changed what."
        )
        self.item_id, self.expected, self.actual = item_id, expected, actual


class WorkItemClosed(Conflict):
    def __init__(self, item_id: int, status: str, by: str | None):
        who = f" by {by}" if by else ""
        super().__init__(f"Work item {item_id} is already {status}{who}.")
        self.item_id, self.status, self.by = item_id, status, by


class InvalidFormData(CrmflowError):
    """The submitted values do not fit the step's form; ``errors`` maps field id to message."""

    def __init__(self, task_name: str, errors: dict[str, str]):
        listed = "; ".join(f"{field}: {message}" for field, message in errors.items())
        super().__init__(f"The form of {task_name!r} has invalid values: {listed}")
        self.errors = errors


class ProcessNotDeployed(NotFound):
    def __init__(self, key: str):
        super().__init__(f"No process with key {key!r} is deployed. Deploy its BPMN file first.")
        self.key = key


class ProcessFailed(CrmflowError):
    """A step of the process itself failed (a script, a condition, an expression):
    nothing was saved, and the message names the BPMN element."""


class MessageNotDelivered(CrmflowError):
    """No instance waits for the message, no process starts with it, and whoever sent it
    asked for it not to be kept."""
