"""Who owns a human step, by when, how urgently: the BPMN's words resolved against the
instance's data at the moment the step becomes ready."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from engine.bpmn.expressions import is_wrapped, iso8601_literal
from engine.errors import ProcessFailed
from engine.texts import Text, _

DEFAULT_PRIORITY = 50

# (start, ISO 8601 duration) -> due moment. The default counts calendar time; a
# business calendar that counts working time can be plugged into the Engine instead.
DueCalculator = Callable[[datetime, str], datetime]


def calendar_due(start: datetime, duration: str) -> datetime:
    parsed = TimerEventDefinition.parse_iso_duration(duration)
    return start + TimerEventDefinition.get_timedelta_from_start(parsed, start)


@dataclass(frozen=True)
class Assignment:
    stage: str
    assignee: str | None
    candidate_users: list[str]
    candidate_groups: list[str]
    due_at: datetime | None
    priority: int


def resolve_assignment(task, evaluate, now: datetime, due_calculator: DueCalculator) -> Assignment:
    """``evaluate(task, expression)`` is the sandboxed script engine's evaluate."""
    spec = task.task_spec
    describe = _describe(spec)

    def value(attribute: str) -> Any:
        raw = getattr(spec, attribute, None)
        if raw is None or not is_wrapped(raw):
            return raw
        try:
            return evaluate(task, raw)
        except Exception as problem:
            raise ProcessFailed(_("%(task)s: camunda:%(attribute)s %(value)s could not be evaluated: %(reason)s",
                                  task=describe, attribute=_CAMUNDA_NAMES[attribute], value=repr(raw),
                                  reason=_reason(problem)), code="expression_failed") from problem

    assignee = _name(value("assignee"))
    candidate_users = _names(value("candidate_users"))
    candidate_groups = _names(value("candidate_groups"))
    if not candidate_users and not candidate_groups and spec.lane:
        candidate_groups = [spec.lane]
    return Assignment(
        stage=stage_of(spec),
        assignee=assignee,
        candidate_users=candidate_users,
        candidate_groups=candidate_groups,
        due_at=_due(value("due_date"), now, due_calculator, describe),
        priority=_priority(value("priority"), describe),
    )


def stage_of(spec) -> str:
    """The stage a human task belongs to: its ``stage`` property, else its name."""
    return (spec.extensions or {}).get("stage") or spec.bpmn_name or spec.bpmn_id


_CAMUNDA_NAMES = {
    "assignee": "assignee",
    "candidate_users": "candidateUsers",
    "candidate_groups": "candidateGroups",
    "due_date": "dueDate",
    "priority": "priority",
}


def _describe(spec) -> Text:
    if spec.bpmn_name:
        return _("User task '%(task_id)s' (%(name)s)", task_id=spec.bpmn_id, name=spec.bpmn_name)
    return _("User task '%(task_id)s'", task_id=spec.bpmn_id)


def _reason(problem: Exception) -> str:
    return str(getattr(problem, "error", None) or problem)


def _name(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def _names(raw: Any) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, (list, tuple, set)) else str(raw).split(",")
    return sorted({str(item).strip() for item in items if str(item).strip()})


def _due(raw: Any, now: datetime, due_calculator: DueCalculator, describe: Text) -> datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
    if isinstance(raw, date):
        return datetime.combine(raw, time(23, 59, 59), timezone.utc)
    if isinstance(raw, timedelta):
        return now + raw
    text = str(raw).strip()
    if iso8601_literal(text):
        if text.upper().startswith("P"):
            return due_calculator(now, text)
        try:
            return TimerEventDefinition.get_datetime(text)
        except ValueError:
            pass
    raise ProcessFailed(_("%(task)s: camunda:dueDate %(value)s is neither an ISO 8601 duration (P2D, PT4H) nor a "
                          "date-time", task=describe, value=repr(text)), code="bad_due_date")


def _priority(raw: Any, describe: Text) -> int:
    if raw is None or raw == "":
        return DEFAULT_PRIORITY
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ProcessFailed(_("%(task)s: camunda:priority %(value)s is not a whole number", task=describe,
                              value=repr(raw)), code="bad_priority") from None
