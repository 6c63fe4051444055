"""The escalation ladder: every deadline reaches the responsible people on time, once.

When a work item with a deadline is created, its ladder is *planned*: one ``escalations``
row per rung, each with the moment it is due, in the same transaction as the item.

====================  =====================================  ================================
rung (``level``)      due                                    who is notified
====================  =====================================  ================================
``reminder``          at ``remindAt`` (80 %) of the working   the assignee (unassigned: the
                      time allowed, or ``remindBefore``       item's candidates)
                      working time before the deadline
``breach``            at the deadline                        the assignee and their manager
                                                             (unassigned: candidate users and
                                                             the heads of candidate groups)
``head``              ``headAfter`` working time after the    the head of department; the item's
                      deadline (PT4H)                         priority is raised and, where
                                                             configured, it is reassigned to a
                                                             substitute
====================  =====================================  ================================

The ladder is declared in the BPMN as ``camunda:properties`` (on the process for all its
tasks, on a user task for that task) or passed to ``EscalationService`` per process key;
see docs/escalation.md. Closing the item cancels its pending rungs.

*Firing* is ``EscalationService.sweep``: it claims due pending rows (PostgreSQL ``FOR
UPDATE SKIP LOCKED``; SQLite serializes write transactions) and, in the same
transaction, marks each ``done`` with a conditional update, writes the notifications
(in-app rows and e-mail outbox rows) and a history event. A worker killed mid-sweep
rolls back its batch, so nothing is lost or doubled; the unique ``dedupe_key`` per
(item, level) keeps a rung from being planned twice.

A whole instance may have deadlines of its own (a claim's response deadline):
``set_instance_deadline`` plans the same ladder for it, addressed to a responsible user.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from sqlalchemy import bindparam, case, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from engine import people
from engine.bpmn.expressions import is_wrapped
from engine.deadlines.calendar import BusinessCalendars, CalendarError, WorkingCalendar, parse_duration
from engine.errors import InstanceNotFound, ProcessFailed
from engine.models import (
    Escalation,
    EscalationStatus,
    EventType,
    Group,
    HistoryEvent,
    InstanceDeadline,
    ItemStatus,
    ProcessInstance,
    User,
    WorkItem,
)
from engine.outbox.notifications import CHANNELS, notify
from engine.runtime.history import record
from engine.texts import Listing, Moment, Text, _, ngettext

log = logging.getLogger(__name__)

REMINDER, BREACH, HEAD = "reminder", "breach", "head"
LEVELS = (REMINDER, BREACH, HEAD)
# The history event type of a fired (or skipped) rung.
ESCALATED = "escalated"
PROPERTY_PREFIX = "escalation"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
RETRIES = 5
SETTINGS = ("escalation", "escalation.remindAt", "escalation.remindBefore", "escalation.headAfter",
            "escalation.raisePriorityTo", "escalation.reassignTo", "escalation.channels")


@dataclass(frozen=True)
class Ladder:
    """How one deadline escalates. Durations are ISO 8601, counted in working time."""

    enabled: bool = True
    remind_at: float | None = 0.8        # share of the working time allowed
    remind_before: str | None = None     # working time before the deadline; wins over remind_at
    head_after: str | None = "PT4H"      # None: no head-of-department rung
    raise_priority_to: int | None = 90   # at the head rung, if the item's priority is lower
    reassign_to: str | None = None       # at the head rung: the substitute's user name
    channels: tuple[str, ...] = CHANNELS

    def with_properties(self, properties: Mapping[str, str], where: Text) -> Ladder:
        """This ladder changed by ``escalation.*`` properties; a bad value raises
        ``ProcessFailed`` naming ``where`` and the property."""
        changes: dict[str, Any] = {}
        for name, raw in properties.items():
            if name != PROPERTY_PREFIX and not name.startswith(PROPERTY_PREFIX + "."):
                continue
            value = (raw or "").strip()
            setting = name[len(PROPERTY_PREFIX) + 1:]
            problem = None
            if setting == "":
                if value.lower() not in ("on", "off"):
                    problem = _("use on or off")
                changes["enabled"] = value.lower() != "off"
            elif setting == "remindAt":
                try:
                    share = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
                except ValueError:
                    share = -1
                if not 0 < share < 1:
                    problem = _("use a share of the time allowed, like %(percent)s or %(share)s", percent="80%",
                                share="0.8")
                changes.update(remind_at=share, remind_before=None)
            elif setting in ("remindBefore", "headAfter"):
                key = "remind_before" if setting == "remindBefore" else "head_after"
                if value.lower() == "none":
                    changes[key] = None
                    if key == "remind_before":
                        changes["remind_at"] = None
                else:
                    try:
                        parse_duration(value)
                    except CalendarError as error:
                        problem = Text.literal(str(error))
                    changes[key] = value
            elif setting == "raisePriorityTo":
                if value.lower() == "none":
                    changes["raise_priority_to"] = None
                elif value.isdigit():
                    changes["raise_priority_to"] = int(value)
                else:
                    problem = _("use a whole number or none")
            elif setting == "reassignTo":
                changes["reassign_to"] = value or None
            elif setting == "channels":
                channels = tuple(c.strip() for c in value.split(",") if c.strip())
                unknown = set(channels) - set(CHANNELS)
                if unknown or not channels:
                    problem = _("use a comma-separated list of %(channels)s", channels=list(CHANNELS))
                changes["channels"] = channels
            else:
                problem = _("unknown setting; known are %(settings)s", settings=list(SETTINGS))
            if problem:
                raise ProcessFailed(_("%(where)s: camunda property %(name)s=%(value)s: %(problem)s", where=where,
                                      name=name, value=repr(raw), problem=problem), code="bad_escalation_property")
        return replace(self, **changes)


@dataclass
class SweepResult:
    fired: int = 0
    skipped: int = 0
    cancelled: int = 0
    by_level: dict[str, int] = field(default_factory=dict)


class CalendarTime:
    """Round-the-clock time, for an Engine whose deadlines are counted in calendar time."""

    def add(self, start: datetime, duration: str) -> datetime:
        parsed = parse_duration(duration)
        return start + parsed.working + timedelta(days=parsed.days + 7 * parsed.weeks
                                                  + 30 * parsed.months + 365 * parsed.years)

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        return start + amount

    def subtract_working_time(self, end: datetime, amount: timedelta) -> datetime:
        return end - amount

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        return end - start


class EscalationService:
    """Plans ladders as steps create deadlines, and fires the rungs that are due."""

    def __init__(self, engine, *, calendars: BusinessCalendars | None = None, ladder: Ladder | None = None,
                 processes: Mapping[str, Ladder] | None = None, worker: str | None = None):
        self.engine = engine
        # Without a business calendar the deadlines are calendar time, and so is the ladder.
        self.calendars = calendars
        self.ladder = ladder or Ladder()
        self.processes = dict(processes or {})
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._process_properties: dict[int, dict[str, str]] = {}

    # -- planning (inside the step's transaction) ---------------------------------------

    def on_step(self, session: Session, events: list[HistoryEvent]) -> None:
        """The step listener (``processes.system`` adds it): plans the ladder of every new
        item with a deadline and of the instance deadlines a process declares, cancels the
        rungs of closed items, meets the deadlines of finished instances. It runs in every
        step of every process: items without a deadline (the event says so) cost no query."""
        created = [e.work_item_id for e in events
                   if e.type == EventType.WORK_ITEM_CREATED and (e.detail or {}).get("due_at")]
        closed = [e.work_item_id for e in events
                  if e.type in (EventType.WORK_ITEM_COMPLETED, EventType.WORK_ITEM_CANCELLED)]
        finished = [e for e in events if e.type == EventType.INSTANCE_COMPLETED]
        for event in events:
            if event.type == EventType.INSTANCE_STARTED:
                self._plan_declared_deadlines(session, event.instance_id)
        if closed:
            session.execute(_CANCEL_RUNGS_OF_ITEMS, {"item_ids": closed})
        for event in finished:
            meet_instance_deadlines(session, event.instance_id, event.at)
        for item_id in created:
            item = session.get(WorkItem, item_id)
            if item is not None and item.due_at is not None:
                self._plan_item(session, item)

    def _plan_declared_deadlines(self, session: Session, instance_id: int) -> None:
        """Deadlines the process declares for the whole instance, as properties::

            deadline.response = P10D | 2026-12-01T09:00:00Z | ${responseDue}
            deadline.response.responsible = ann | ${curator}
            deadline.response.team = claims
        """
        instance = session.get(ProcessInstance, instance_id)
        properties = self._properties_of_process(instance.definition)
        names = sorted({key.split(".")[1] for key in properties if key.startswith("deadline.") and key.count(".") >= 1})
        if not names:
            return
        data = self.engine.current_data(instance, session)
        where = _process_where(instance.definition.key)
        for name in names:
            due = _declared_value(properties, f"deadline.{name}", data, where)
            responsible = _declared_value(properties, f"deadline.{name}.responsible", data, where)
            team = _declared_value(properties, f"deadline.{name}.team", data, where)
            if due in (None, ""):
                raise ProcessFailed(_("%(where)s: camunda property deadline.%(name)s gives no deadline", where=where,
                                      name=name), code="bad_deadline_property")
            if isinstance(due, str) and not due.strip().upper().startswith("P"):
                try:
                    due = datetime.fromisoformat(due.strip().replace("Z", "+00:00"))
                except ValueError:
                    raise ProcessFailed(_("%(where)s: camunda property deadline.%(name)s=%(value)s is neither an ISO "
                                          "duration (P10D) nor a date-time", where=where, name=name, value=repr(due)),
                                        code="bad_deadline_property") from None
            if isinstance(due, datetime) and due.tzinfo is None:
                raise ProcessFailed(_("%(where)s: deadline.%(name)s %(moment)s has no time zone", where=where,
                                      name=name, moment=due.isoformat()), code="bad_deadline_property")
            if responsible and people.find_user(session, str(responsible)) is None:
                raise ProcessFailed(_("%(where)s: deadline.%(name)s.responsible %(user)s is not a crmflow user",
                                      where=where, name=name, user=repr(responsible)), code="bad_deadline_property")
            try:
                self.set_instance_deadline_in(session, instance_id, due=due, name=name, team=team or None,
                                              responsible=str(responsible) if responsible else None)
            except CalendarError as problem:
                raise ProcessFailed(_("%(where)s: camunda property deadline.%(name)s: %(problem)s", where=where,
                                      name=name, problem=str(problem)), code="bad_deadline_property") from None

    def _plan_item(self, session: Session, item: WorkItem) -> None:
        ladder = self.ladder_for(item.instance, item.task_spec)
        if not ladder.enabled:
            return
        teams = [item.lane, *item.candidate_groups]
        plan = self.plan(ladder, item.created_at, item.due_at, teams)
        for level, due_at in plan.items():
            session.add(Escalation(
                dedupe_key=f"item:{item.id}:{level}", instance_id=item.instance_id, work_item_id=item.id,
                level=level, due_at=due_at, deadline=item.due_at, status=EscalationStatus.PENDING,
                settings=_settings(ladder, level, teams),
            ))

    def plan(self, ladder: Ladder, start: datetime, deadline: datetime, teams: Sequence[str | None]) -> dict[str, datetime]:
        """The due moment of each rung of ``ladder`` for a deadline set at ``start``."""
        calendar = self.calendar(teams)
        moments: dict[str, datetime] = {}
        if deadline <= start:
            remind = None  # overdue from the start: nothing to remind of, straight to the breach
        elif ladder.remind_before:
            remind = calendar.subtract_working_time(deadline, parse_duration(ladder.remind_before).working
                                                    or _whole(calendar, deadline, ladder.remind_before))
        elif ladder.remind_at:
            allowed = calendar.working_time_between(start, deadline)
            remind = calendar.add_working_time(start, allowed * ladder.remind_at)
        else:
            remind = None
        if remind is not None and start < remind < deadline:
            moments[REMINDER] = remind
        moments[BREACH] = deadline
        if ladder.head_after:
            moments[HEAD] = max(calendar.add(deadline, ladder.head_after), deadline)
        return moments

    def calendar(self, teams: Sequence[str | None]) -> WorkingCalendar | CalendarTime:
        return self.calendars.for_teams(teams) if self.calendars is not None else CalendarTime()

    def ladder_for(self, instance: ProcessInstance, task_spec: str | None) -> Ladder:
        """Default, then the service's ladder for the process, then the process's BPMN
        properties, then the task's."""
        definition = instance.definition
        ladder = self.processes.get(definition.key, self.ladder)
        ladder = ladder.with_properties(self._properties_of_process(definition), _process_where(definition.key))
        if task_spec:
            task = self.engine.task_spec(definition, task_spec)
            where = (_("User task '%(task_id)s' (%(name)s)", task_id=task_spec, name=task.bpmn_name) if task.bpmn_name
                     else _("User task '%(task_id)s'", task_id=task_spec))
            ladder = ladder.with_properties(task.extensions or {}, where)
        return ladder

    def _properties_of_process(self, definition) -> dict[str, str]:
        cached = self._process_properties.get(definition.id)
        if cached is None:
            cached = self._process_properties[definition.id] = _process_properties(definition)
        return cached

    # -- instance deadlines ------------------------------------------------------------

    def set_instance_deadline(self, instance_id: int, *, due: datetime | str, responsible: str | None,
                              name: str = "response", team: str | None = None,
                              ladder: Ladder | None = None) -> InstanceDeadline:
        """Give a whole instance a deadline (``due``: a moment, or an ISO duration counted
        in working time from now) with its own ladder addressed to ``responsible``.
        Setting it again moves it and re-plans the rungs not yet fired."""
        with self.engine.transaction() as session:
            return self.set_instance_deadline_in(session, instance_id, due=due, responsible=responsible,
                                                 name=name, team=team, ladder=ladder)

    def set_instance_deadline_in(self, session: Session, instance_id: int, *, due: datetime | str,
                                 responsible: str | None, name: str = "response", team: str | None = None,
                                 ladder: Ladder | None = None) -> InstanceDeadline:
        """The same inside the caller's transaction (e.g. from a step listener)."""
        instance = session.get(ProcessInstance, instance_id)
        if instance is None:
            raise InstanceNotFound(instance_id)
        if responsible is not None:
            people.get_user(session, responsible)
        now = self.engine.clock()
        calendar = self.calendar([team])
        due_at = calendar.add(now, due) if isinstance(due, str) else due
        if due_at.tzinfo is None:
            raise ValueError(f"deadline {name!r} of instance {instance_id}: give an aware (UTC) moment")
        deadline = session.scalar(select(InstanceDeadline).where(
            InstanceDeadline.instance_id == instance_id, InstanceDeadline.name == name))
        if deadline is None:
            deadline = InstanceDeadline(instance_id=instance_id, name=name, created_at=now, due_at=due_at)
            session.add(deadline)
        deadline.due_at, deadline.responsible, deadline.team, deadline.met_at = due_at, responsible, team, None
        ladder = ladder or self.ladder_for(instance, None)
        planned = {row.level: row for row in session.scalars(select(Escalation).where(
            Escalation.dedupe_key.in_(_instance_keys(instance_id, name))))}
        moments = self.plan(ladder, now, due_at, [team])
        for level, row in planned.items():
            if level not in moments and row.status == EscalationStatus.PENDING:
                row.status = EscalationStatus.CANCELLED  # the moved deadline leaves no room for it
        for level, moment in moments.items():
            settings = {**_settings(ladder, level, [team]), "responsible": responsible, "deadline_name": name}
            row = planned.get(level)
            if row is None:
                session.add(Escalation(
                    dedupe_key=f"instance:{instance_id}:{name}:{level}", instance_id=instance_id, work_item_id=None,
                    level=level, due_at=moment, deadline=due_at, status=EscalationStatus.PENDING,
                    settings=settings))
            elif row.status != EscalationStatus.DONE:
                row.due_at, row.deadline, row.settings = moment, due_at, settings
                row.status = EscalationStatus.PENDING
        return deadline

    def meet_instance_deadline(self, instance_id: int, name: str = "response") -> None:
        """The instance did what its deadline asked (e.g. the claim was answered)."""
        with self.engine.transaction() as session:
            meet_instance_deadlines(session, instance_id, self.engine.clock(), name)

    # -- firing ------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None, batch: int = 200) -> SweepResult:
        """Fire every rung due at ``now``, oldest first, in batches of one transaction each."""
        now = now or self.engine.clock()
        result = SweepResult()
        while True:
            handled = self._sweep_batch(now, batch, result)
            if handled < batch:
                return result

    def _sweep_batch(self, now: datetime, batch: int, result: SweepResult) -> int:
        for attempt in range(1, RETRIES + 1):
            partial = SweepResult()
            try:
                with self.engine.transaction() as session:
                    due = list(session.scalars(
                        select(Escalation.id)
                        .where(Escalation.status == EscalationStatus.PENDING, Escalation.due_at <= now)
                        .order_by(Escalation.due_at, Escalation.id)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    ))
                    if due:
                        self._fire_batch(session, due, now, partial)
            except OperationalError:
                # A deadlock with a step closing the same item: the batch rolled back whole.
                if attempt == RETRIES:
                    raise
                continue
            result.fired += partial.fired
            result.skipped += partial.skipped
            result.cancelled += partial.cancelled
            for level, count in partial.by_level.items():
                result.by_level[level] = result.by_level.get(level, 0) + count
            return len(due)
        raise AssertionError("unreachable")

    def _fire_batch(self, session: Session, due_ids: list[int], now: datetime, result: SweepResult) -> None:
        """Fire a batch of rungs in the caller's transaction, with a handful of statements
        per batch rather than per rung: the sweep's cost follows the number of breaches."""
        # The conditional update is the claim: only one sweep moves a rung out of pending.
        # One statement per row, by primary key: given "id IN (...) AND status = ...",
        # SQLite's planner walks the status index, i.e. every pending rung.
        table = Escalation.__table__
        session.connection().execute(
            table.update()
            .where(table.c.id == bindparam("claim_id"), table.c.status == EscalationStatus.PENDING)
            .values(status=EscalationStatus.DONE, fired_at=now, fired_by=self.worker),
            [{"claim_id": row_id} for row_id in due_ids],
        )
        rows = sorted(
            (row for row in session.scalars(select(Escalation).where(Escalation.id.in_(due_ids)))
             if row.status == EscalationStatus.DONE and row.fired_by == self.worker and row.fired_at == now),
            key=lambda row: (row.due_at, row.id),
        )
        item_ids = [row.work_item_id for row in rows if row.work_item_id is not None]
        items = {item.id: item for item in session.scalars(
            select(WorkItem).where(WorkItem.id.in_(item_ids)).with_for_update(of=WorkItem)
            .options(selectinload(WorkItem.candidates),
                     selectinload(WorkItem.assignee).selectinload(User.manager).selectinload(User.manager),
                     selectinload(WorkItem.assignee).selectinload(User.groups).selectinload(Group.head))
        )} if item_ids else {}
        open_deadlines = self._open_instance_deadlines(session, rows)
        context = _Recipients(session, rows, items)
        finished: list[dict[str, Any]] = []
        for row in rows:
            item = items.get(row.work_item_id) if row.work_item_id is not None else None
            still_due = (item is not None and item.status == ItemStatus.OPEN) if row.work_item_id else (
                (row.instance_id, row.settings.get("deadline_name")) in open_deadlines)
            if not still_due:
                finished.append({"id": row.id, "status": EscalationStatus.CANCELLED,
                                 "outcome": {"reason": "the item was closed or the deadline met"}})
                result.cancelled += 1
                continue
            if row.level == REMINDER and now >= row.deadline:
                # After downtime: the breach notice that follows says more than a late reminder.
                outcome = {"reason": "the deadline had passed before the reminder could be sent"}
                finished.append({"id": row.id, "status": EscalationStatus.SKIPPED, "outcome": outcome})
                _record_rung(session, row, item, now, {"level": row.level, "skipped": outcome["reason"]})
                result.skipped += 1
                continue
            recipients = context.of(row, item)
            channels = tuple(row.settings.get("channels", CHANNELS))
            calendar = self.calendar(row.settings.get("teams", []))
            notified = []
            for user in recipients:
                subject, body = _message(row, item, calendar, now, user.locale)
                used = notify(session, user, kind=f"escalation.{row.level}", subject=subject, body=body, now=now,
                              channels=channels, instance_id=row.instance_id, work_item_id=row.work_item_id,
                              escalation_id=row.id)
                notified.append({"user": user.username, "channels": used})
            outcome: dict[str, Any] = {"notified": notified}
            if not recipients:
                outcome["warning"] = "nobody responsible could be found to notify"
                log.warning("Escalation %s (%s of instance %s) found nobody to notify",
                            row.id, row.level, row.instance_id)
            assignee_id = item.assignee_id if item is not None else None
            if item is not None and row.level == HEAD:
                outcome.update(self._raise(session, row, item))
            finished.append({"id": row.id, "status": EscalationStatus.DONE, "outcome": outcome,
                             "assignee_id": assignee_id})
            _record_rung(session, row, item, now, {"level": row.level, "deadline": row.deadline.isoformat(), **outcome})
            result.fired += 1
            result.by_level[row.level] = result.by_level.get(row.level, 0) + 1
        session.flush()
        if finished:
            session.execute(update(Escalation), finished)  # executemany by primary key

    def _open_instance_deadlines(self, session: Session, rows: list[Escalation]) -> set[tuple[int, str]]:
        instance_ids = {row.instance_id for row in rows if row.work_item_id is None}
        if not instance_ids:
            return set()
        return {tuple(row) for row in session.execute(select(InstanceDeadline.instance_id, InstanceDeadline.name).where(
            InstanceDeadline.instance_id.in_(instance_ids), InstanceDeadline.met_at.is_(None)))}

    def _raise(self, session: Session, row: Escalation, item: WorkItem) -> dict[str, Any]:
        """The head rung's changes to the item: a higher priority, a substitute. Either makes
        a form opened before the escalation stale (engine.runtime.work_items)."""
        changes: dict[str, Any] = {}
        target_priority = row.settings.get("raise_priority_to")
        before = item.priority
        if target_priority is not None and self.engine.raise_priority_in(session, item, target_priority):
            changes["priority"] = {"from": before, "to": target_priority}
        substitute_name = row.settings.get("reassign_to")
        if substitute_name:
            substitute = people.find_user(session, substitute_name)
            previous = item.assignee.username if item.assignee else None
            if substitute is None or not substitute.active:
                changes["reassignment_refused"] = f"{substitute_name!r} is not an active crmflow user"
            elif self.engine.reassign_in(session, item, substitute.username, actor="escalation",
                                         reason="deadline escalated to the head of department"):
                changes["reassigned"] = {"from": previous, "to": substitute.username}
        return changes

    # -- reading -----------------------------------------------------------------------

    def escalations(self, *, instance_id: int | None = None, work_item_id: int | None = None) -> list[Escalation]:
        with self.engine.reading() as session:
            query = select(Escalation).order_by(Escalation.due_at, Escalation.id)
            if instance_id is not None:
                query = query.where(Escalation.instance_id == instance_id)
            if work_item_id is not None:
                query = query.where(Escalation.work_item_id == work_item_id)
            return list(session.scalars(query))

    def next_due(self) -> datetime | None:
        """The moment the next pending rung is due (the scheduler sleeps until then)."""
        with self.engine.reading() as session:
            return session.scalar(select(Escalation.due_at).where(
                Escalation.status == EscalationStatus.PENDING).order_by(Escalation.due_at).limit(1))


def meet_instance_deadlines(session: Session, instance_id: int, at: datetime, name: str | None = None) -> None:
    query = select(InstanceDeadline).where(InstanceDeadline.instance_id == instance_id,
                                           InstanceDeadline.met_at.is_(None))
    if name is not None:
        query = query.where(InstanceDeadline.name == name)
    for deadline in session.scalars(query):
        deadline.met_at = at
        session.execute(
            update(Escalation).where(Escalation.dedupe_key.in_(_instance_keys(instance_id, deadline.name)))
            .values(status=_cancel_if_pending())
            .execution_options(synchronize_session=False)
        )


def _cancel_if_pending():
    # A CASE rather than "AND status = 'pending'" in the WHERE clause: the statement then
    # stays on the item's (or key's) index instead of SQLite's planner picking the status
    # index, which holds every pending rung.
    return case((Escalation.status == EscalationStatus.PENDING, EscalationStatus.CANCELLED),
                else_=Escalation.status)


_CANCEL_RUNGS_OF_ITEMS = (
    update(Escalation.__table__)
    .where(Escalation.__table__.c.work_item_id.in_(bindparam("item_ids", expanding=True)))
    .values(status=_cancel_if_pending())
)


def _instance_keys(instance_id: int, name: str) -> list[str]:
    return [f"instance:{instance_id}:{name}:{level}" for level in LEVELS]


def _department_heads(owner: User | None, groups: list[Group]) -> list[User | None]:
    """The head of the item's department (its lane or candidate groups), else of the
    owner's groups, else the owner's manager's manager: someone above the breach notice."""
    heads = [g.head for g in groups if g.head is not None and (owner is None or g.head_id != owner.id)]
    if not heads and owner is not None:
        heads = [g.head for g in owner.groups if g.head is not None and g.head_id != owner.id]
    if not heads and owner is not None and owner.manager is not None:
        heads = [owner.manager.manager or owner.manager]
    return heads


def _settings(ladder: Ladder, level: str, teams: Sequence[str | None]) -> dict[str, Any]:
    settings: dict[str, Any] = {"channels": list(ladder.channels), "teams": [t for t in teams if t]}
    if level == HEAD:
        settings.update(raise_priority_to=ladder.raise_priority_to, reassign_to=ladder.reassign_to)
    return settings


def _whole(calendar, deadline: datetime, duration: str) -> timedelta:
    """``remindBefore`` given in days (P1D): the working time of that many days."""
    moved = calendar.add(deadline, duration)
    return calendar.working_time_between(deadline, moved)


def _record_rung(session: Session, row: Escalation, item: WorkItem | None, now: datetime,
                 detail: dict[str, Any]) -> None:
    record(session, ESCALATED, now, "escalation", row.instance_id, row.work_item_id,
           item.task_spec if item else None, detail={**detail, "escalation_id": row.id})


class _Recipients:
    """Who hears of a rung, with the groups and users of a whole batch loaded at once."""

    def __init__(self, session: Session, rows: list[Escalation], items: dict[int, WorkItem]):
        group_names = {name for item in items.values() for name in [item.lane, *item.candidate_groups] if name}
        group_names |= {team for row in rows if row.work_item_id is None for team in row.settings.get("teams", [])}
        user_names = {name for item in items.values() for name in item.candidate_users}
        user_names |= {row.settings["responsible"] for row in rows if row.settings.get("responsible")}
        self.groups = {group.name: group for group in session.scalars(
            select(Group).where(Group.name.in_(group_names))
            .options(selectinload(Group.members), selectinload(Group.head))
        )} if group_names else {}
        self.users = {user.username: user for user in session.scalars(
            select(User).where(User.username.in_(user_names))
            .options(selectinload(User.manager).selectinload(User.manager),
                     selectinload(User.groups).selectinload(Group.head))
        )} if user_names else {}

    def of(self, row: Escalation, item: WorkItem | None) -> list[User]:
        if item is not None:
            owner = item.assignee
            candidate_users = [self.users[n] for n in item.candidate_users if n in self.users]
            groups = [self.groups[n] for n in [item.lane, *item.candidate_groups] if n in self.groups]
        else:
            owner = self.users.get(row.settings.get("responsible") or "")
            candidate_users = []
            groups = [self.groups[n] for n in row.settings.get("teams", []) if n in self.groups]
        if row.level == REMINDER:
            chosen = [owner] if owner else candidate_users + [m for g in groups for m in g.members]
        elif row.level == BREACH:
            chosen = [owner, owner.manager] if owner else candidate_users + [g.head for g in groups]
        else:
            chosen = _department_heads(owner, groups)
        unique: dict[int, User] = {}
        for user in chosen:
            if user is not None and user.active and user.id not in unique:
                unique[user.id] = user
        return list(unique.values())


def _message(row: Escalation, item: WorkItem | None, calendar, now: datetime, locale: str) -> tuple[str, str]:
    """The notice's subject and body in the recipient's language (``users.locale``), the
    deadline in the calendar's time zone."""
    when = Moment(row.deadline, getattr(calendar, "zone", None))
    if item is not None:
        what = _("«%(name)s»", name=item.name)
        where = _("work item %(item_id)s, instance %(instance_id)s", item_id=item.id, instance_id=row.instance_id)
        owner = item.assignee.display_name if item.assignee else _NOBODY
    else:
        what = _("the %(name)s deadline of instance %(instance_id)s",
                 name=row.settings.get("deadline_name", "response"), instance_id=row.instance_id)
        where = _("instance %(instance_id)s", instance_id=row.instance_id)
        owner = row.settings.get("responsible") or _NOBODY
    if row.level == REMINDER:
        subject = _("Reminder: %(what)s is due %(when)s", what=what, when=when)
        lead = _("%(what)s is due %(when)s. Please finish it in time.", what=what, when=when)
    elif row.level == BREACH:
        subject = _("Overdue: %(what)s was due %(when)s", what=what, when=when)
        lead = _("%(what)s was due %(when)s and is not done.", what=what, when=when)
    else:
        subject = _("Escalated: %(what)s overdue since %(when)s", what=what, when=when)
        lead = _("%(what)s was due %(when)s and is still not done; it is escalated to you as head of department.",
                 what=what, when=when)
    lines = [lead, None, _("Responsible: %(owner)s", owner=owner)]
    late = now - row.deadline
    if late > timedelta():
        lines.append(_("Late by: %(span)s", span=Listing(_span(late), " ")))
    lines.append(_("Reference: %(where)s", where=where))
    body = "\n".join(line.render(locale) if line is not None else "" for line in lines)
    return subject.render(locale), body[0].upper() + body[1:] + "\n"


_NOBODY = _("nobody (in the queue)")


def _span(late: timedelta) -> list[Text]:
    """How late, in days, hours and minutes (the parts that are not zero)."""
    hours, seconds = divmod(int(late.total_seconds()), 3600)
    days, hours = divmod(hours, 24)
    minutes = seconds // 60
    parts = []
    if days:
        parts.append(ngettext("%(num)d day", "%(num)d days", days))
    if hours:
        parts.append(ngettext("%(num)d hour", "%(num)d hours", hours))
    if minutes or not parts:
        parts.append(ngettext("%(num)d minute", "%(num)d minutes", minutes))
    return parts


def _process_where(key: str) -> Text:
    return _("Process '%(key)s'", key=key)


def _declared_value(properties: Mapping[str, str], key: str, data: Mapping[str, Any], where: Text) -> Any:
    """A property's value; ``${variable}`` reads the instance's data."""
    raw = properties.get(key)
    if raw is None or not is_wrapped(raw):
        return raw
    name = raw.strip()[2:-1].strip()
    if not name.isidentifier():
        raise ProcessFailed(_("%(where)s: camunda property %(name)s=%(value)s: only ${variable} is supported here",
                              where=where, name=key, value=repr(raw)), code="bad_deadline_property")
    if name not in data:
        raise ProcessFailed(_("%(where)s: camunda property %(name)s=%(value)s: the process has no variable "
                              "'%(variable)s'", where=where, name=key, value=repr(raw), variable=name),
                            code="bad_deadline_property")
    return data[name]


def _process_properties(definition) -> dict[str, str]:
    """The camunda:properties of the process element of a definition."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for text in definition.sources.values():
        try:
            root = etree.fromstring(text.encode("utf-8"), parser)
        except etree.XMLSyntaxError:
            continue
        for process in root.iter(f"{{{BPMN_NS}}}process"):
            if process.get("id") != definition.key:
                continue
            properties = {}
            extensions = process.find(f"{{{BPMN_NS}}}extensionElements")
            if extensions is not None:
                for prop in extensions.iter(f"{{{CAMUNDA_NS}}}property"):
                    properties[prop.get("name") or ""] = prop.get("value") or ""
            return properties
    return {}
