"""The engine facade: the one API the CLI, the web UI, the REST API, the CRM and the
benchmarks use. Every call that changes something is one transaction of the unit of work
(``engine.runtime.unit_of_work``): the instance's state, its work items and its history
commit together or not at all. How one step runs is ``engine.runtime.step``; what happens
to an open work item between steps is ``engine.runtime.work_items``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine import people
from engine.bpmn.forms import clean_submission, form_fields, json_safe
from engine.bpmn.messages import incoming, json_payload, start_message_names, subscriptions
from engine.bpmn.parser import CrmStartEvent
from engine.bpmn.scripting import SandboxedScriptEngine
from engine.bpmn.support import DEFAULT_TIME_TO_LIVE, FAIL, KEEP
from engine.bpmn.validation import BpmnValidationError, Problem, load_bundle, validate_paths
from engine.db import create_db_engine
from engine.deadlines.calendar import BusinessCalendars, WorkingCalendar, business_calendars_of
from engine.errors import (
    ASSIGNED,
    NO_LONGER_ACTIVE,
    InstanceNotFound,
    MessageNotDelivered,
    NotACandidate,
    NotAuthorized,
    ProcessNotDeployed,
    StaleWorkItem,
    WorkItemClosed,
    WorkItemNotFound,
)
from engine.models import (
    EventType,
    Group,
    HistoryEvent,
    InstanceStatus,
    ItemStatus,
    ProcessDefinition,
    ProcessInstance,
    User,
    WorkItem,
)
from engine.runtime import queries
from engine.runtime import statements as sql
from engine.runtime import work_items
from engine.runtime.assignment import DueCalculator
from engine.runtime.definitions import (
    Specs,
    content_hash,
    find_task_spec,
    latest_definition,
    process_sources,
    read_bpmn_files,
)
from engine.runtime.history import record
from engine.runtime.messages import Message, Messages, Publication, record_start_events
from engine.runtime.state import StateCodec
from engine.runtime.step import (
    LiveInstance,
    Stepper,
    UserRows,
    check_json_object,
    lock_instance,
    run_to_wait_state,
    versioned_write,
    workflow_data,
)
from engine.runtime.unit_of_work import StepListener, UnitOfWork
from engine.texts import _

T = TypeVar("T")
DEFAULT_CALENDAR = WorkingCalendar()
# Why a bundle without an executable process deploys nothing, for a BPMN file (False) and a DMN file (True).
_NOTHING_TO_DEPLOY = {
    False: "Nothing in this file can be deployed: it has no executable process.",
    True: "A decision table is deployed with the processes that use it: deploy it together with their BPMN files.",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class DeployResult:
    key: str
    version: int
    definition_id: int
    created: bool  # False: identical content was already deployed


@dataclass(frozen=True)
class InstanceDetails:
    instance: ProcessInstance
    data: dict[str, Any]
    open_items: list[WorkItem]
    history: list[HistoryEvent]


@dataclass(frozen=True)
class CompletedItem:
    """What ``complete`` did: the item as it is now."""

    id: int
    instance_id: int
    name: str
    stage: str
    status: str
    version: int
    completed_by: str
    completed_at: datetime
    submitted_data: dict[str, Any]


class Engine:
    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        due_calculator: DueCalculator | None = None,
        **engine_options: Any,
    ):
        self.database_url = database_url
        self.db = create_db_engine(database_url, **engine_options)
        self.clock = clock
        # Deadlines count working time (CRMFLOW_CALENDAR, else the Russian production calendar).
        self.due_calculator = due_calculator or BusinessCalendars.from_environment()
        self.script_engine = SandboxedScriptEngine()
        self._units = UnitOfWork(self.db)
        self._specs = Specs()
        self._codec = StateCodec()
        self._messages = Messages(self._receive_message, self._start_by_message)
        self._stepper = Stepper(self.script_engine, self.due_calculator, self._codec, self._messages)

    @property
    def working_calendar(self) -> WorkingCalendar:
        """The company's calendar that lateness is counted in (the default production calendar
        when deadlines are counted in calendar time)."""
        calendars = business_calendars_of(self.due_calculator)
        return calendars.company if calendars is not None else DEFAULT_CALENDAR

    # -- set-up ----------------------------------------------------------------------

    def init_db(self) -> None:
        """Create or upgrade the engine's tables to the latest Alembic revision (a layer above
        upgrades its own after: ``processes.system.System.init_db``)."""
        from engine.migrations import upgrade

        upgrade(self.db)

    def dispose(self) -> None:
        self.db.dispose()

    # -- the unit of work ------------------------------------------------------------

    def reading(self) -> AbstractContextManager[Session]:
        """A session for reading what the facade's calls do not cover. It writes nothing:
        changes made through it are never committed."""
        return self._units.reading()

    def transaction(self) -> AbstractContextManager[Session]:
        """One write transaction. What the block writes, the history it records
        (``engine.runtime.history.record``) and what the step listeners write for that
        history commit together or not at all. It is not retried: for work that may lose a
        race with a concurrent writer, use ``atomically``."""
        return self._units.transaction()

    def atomically(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one transaction (as ``transaction``), run again from the start
        when it lost a race with a concurrent writer (a busy SQLite, a PostgreSQL deadlock, a
        row whose version moved): up to five attempts."""
        return self._units.atomically(work)

    def add_listener(self, listener: StepListener, process_keys: Iterable[str] | None = None) -> None:
        """Call ``listener(session, events)`` at the end of every write transaction that
        recorded history — only with the events of ``process_keys``' instances, when
        given — inside that transaction: what the listener writes commits or rolls back
        with the step. History a listener records reaches the listeners in the next round.
        Side effects outside the database (mail, webhooks) must not happen here; record
        them (an outbox) and send after the commit. Listeners run in every step, so they
        must be cheap when a step is none of their business; they run in the order they
        were added (``processes.system`` states it)."""
        self._units.add_listener(listener, process_keys)

    # -- people ----------------------------------------------------------------------

    def add_user(self, username: str, display_name: str | None = None, **attributes: Any) -> User:
        with self.transaction() as session:
            return people.add_user(session, username, display_name, now=self.clock(), **attributes)

    def add_group(self, name: str, display_name: str | None = None, head: str | None = None, members: Sequence[str] = ()):
        with self.transaction() as session:
            return people.add_group(session, name, display_name, head=head, members=members)

    def set_locale(self, username: str, locale: str) -> None:
        """The language a user reads crmflow in (the web UI, e-mails)."""
        with self.transaction() as session:
            people.get_user(session, username).locale = locale

    def users(self) -> list[User]:
        with self.reading() as session:
            return list(session.scalars(select(User).options(selectinload(User.groups), selectinload(User.user_roles))
                                        .order_by(User.username)))

    def groups(self) -> list[Group]:
        with self.reading() as session:
            return list(session.scalars(select(Group).order_by(Group.name)))

    def user(self, username: str) -> User:
        with self.reading() as session:
            user = people.get_user(session, username)
            user.groups  # loaded now: callers read it after the session is gone
            return user

    # -- definitions -----------------------------------------------------------------

    def validate(self, paths: Iterable[str | Path]):
        """Every problem of the files (and of the .bpmn/.dmn files in the directories)."""
        return validate_paths(paths)

    def deploy(self, paths: Iterable[str | Path], deployed_by: str | None = None) -> list[DeployResult]:
        """Deploy every executable process of the files. Identical content is a no-op;
        changed content becomes the next version. Raises BpmnValidationError."""
        bundle = load_bundle(read_bpmn_files(paths))
        if not bundle.processes:
            raise BpmnValidationError([*(Problem(name, _NOTHING_TO_DEPLOY[name.endswith(".dmn")]) for name in bundle.files),
                                       *bundle.warnings])
        results = []
        with self.transaction() as session:
            for key, model in sorted(bundle.processes.items()):
                sources = process_sources(bundle, model)
                digest = content_hash(sources)
                latest = latest_definition(session, key)
                if latest is not None and latest.content_hash == digest:
                    record_start_events(session, latest.id, key, start_message_names(model.spec))
                    results.append(DeployResult(key, latest.version, latest.id, created=False))
                    continue
                definition = ProcessDefinition(
                    key=key,
                    version=(latest.version + 1) if latest else 1,
                    name=model.name,
                    content_hash=digest,
                    sources=sources,
                    deployed_at=self.clock(),
                    deployed_by=deployed_by,
                )
                session.add(definition)
                session.flush()
                record_start_events(session, definition.id, key, start_message_names(model.spec))
                results.append(DeployResult(key, definition.version, definition.id, created=True))
        return results

    def definitions(self, key: str | None = None) -> list[ProcessDefinition]:
        with self.reading() as session:
            query = select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)
            if key is not None:
                query = query.where(ProcessDefinition.key == key)
            return list(session.scalars(query))

    def user_task_form(self, item: WorkItem):
        """The form fields of a work item's step, for the UI and the API."""
        with self.reading() as session:
            instance = session.get(ProcessInstance, item.instance_id)
            spec, subprocess_specs = self._spec(instance.definition_id, instance.process_key, session)
        task_spec = find_task_spec(spec, subprocess_specs, item.task_spec)
        return form_fields(getattr(task_spec, "form", None))

    # -- instances -------------------------------------------------------------------

    def start(
        self,
        process_key: str,
        data: dict[str, Any] | None = None,
        started_by: str | None = None,
        business_key: str | None = None,
        within: Callable[[Session, int], str | None] | None = None,
    ) -> ProcessInstance:
        """Start the latest version of a process and run it to its first wait state.

        ``within(session, instance_id)`` runs inside the start's transaction, once the
        instance row exists and before the process runs: a record a layer above keeps of
        the instance (a deal, a claim) is written there, and commits or rolls back with the
        start. What it returns, if not None, is the instance's business key."""
        data = dict(data or {})
        check_json_object(data, "start data")

        def step(session: Session) -> ProcessInstance:
            if started_by is not None:
                people.get_user(session, started_by)
            definition = latest_definition(session, process_key)
            if definition is None:
                raise ProcessNotDeployed(process_key)
            instance_id = self._start_in(session, definition.id, process_key, definition.version, data, started_by,
                                         business_key, within, self.clock())
            return session.get(ProcessInstance, instance_id)

        return self.atomically(step)

    def _start_in(self, session: Session, definition_id: int, process_key: str, version: int, data: dict[str, Any],
                  started_by: str | None, business_key: str | None,
                  within: Callable[[Session, int], str | None] | None, now: datetime,
                  message: Message | None = None) -> int:
        """Start an instance in the caller's transaction and run it to its first wait state;
        with ``message``, the instance's message start event receives it."""
        spec, subprocess_specs = self._spec(definition_id, process_key, session)
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        # camunda:initiator: the variable that holds who started the instance.
        initiators = {ts.initiator: started_by for ts in spec.task_specs.values()
                      if isinstance(ts, CrmStartEvent) and ts.initiator}
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update({**data, **initiators})
        row = {"definition_id": definition_id, "process_key": process_key, "business_key": business_key,
               "status": InstanceStatus.RUNNING, "state": "", "version": 1, "started_by": started_by,
               "started_at": now, "updated_at": now}
        instance_id = session.execute(sql.INSERT_INSTANCE, row).inserted_primary_key[0]
        key = None
        if within is not None:
            key = within(session, instance_id)
            session.flush()  # write sessions do not autoflush: the listeners' queries must see the record
        if key is not None:
            session.execute(sql.SET_BUSINESS_KEY, {"instance_id": instance_id, "business_key": key})
        live = LiveInstance(instance_id, 1, definition_id, process_key, row["status"], None, None, "")
        detail = {"version": version, "business_key": key or business_key}
        if message is not None:
            detail["message"] = message.name
        record(session, EventType.INSTANCE_STARTED, now, started_by, instance_id, detail=detail)

        def receive_the_message():
            if message is not None:
                run_to_wait_state(workflow)  # to the message start event, waiting
                workflow.event_manager.catch(incoming(message.name, message.key, message.payload), internal=False)

        self._stepper.advance(session, live, workflow, now, actor=started_by, changed=receive_the_message, started=True)
        return instance_id

    def instance(self, instance_id: int) -> InstanceDetails:
        with self.reading() as session:
            instance = session.get(ProcessInstance, instance_id)
            if instance is None:
                raise InstanceNotFound(instance_id)
            workflow = self._load(instance, session)
            history = list(session.scalars(
                select(HistoryEvent).where(HistoryEvent.instance_id == instance_id).order_by(HistoryEvent.id)
            ))
            items = list(session.scalars(
                select(WorkItem).where(WorkItem.instance_id == instance_id, WorkItem.status == ItemStatus.OPEN)
                .options(selectinload(WorkItem.candidates)).order_by(WorkItem.id)
            ))
        return InstanceDetails(instance, workflow_data(workflow), items, history)

    def wake(self, instance_id: int) -> ProcessInstance:
        """Fire the instance's due timers and run what follows them."""

        def step(session: Session) -> ProcessInstance:
            live = lock_instance(session, sql.LOCK_INSTANCE, instance_id=instance_id)
            if live is None:
                raise InstanceNotFound(instance_id)
            if live.status == InstanceStatus.RUNNING:
                workflow = self._load(live, session)
                self._stepper.advance(session, live, workflow, self.clock(), actor=None, changed=workflow.refresh_timers)
            return session.get(ProcessInstance, instance_id)

        return self.atomically(step)

    def due_instances(self, now: datetime | None = None, limit: int = 100) -> list[int]:
        """Running instances with a timer due at ``now``, soonest first."""
        now = now or self.clock()
        with self.reading() as session:
            return list(session.scalars(
                select(ProcessInstance.id)
                .where(ProcessInstance.status == InstanceStatus.RUNNING, ProcessInstance.next_wakeup_at <= now)
                .order_by(ProcessInstance.next_wakeup_at)
                .limit(limit)
            ))

    # -- messages between instances ----------------------------------------------------

    def publish_message(self, name: str, correlation_key: str = "", variables: dict[str, Any] | None = None, *,
                        time_to_live: str = DEFAULT_TIME_TO_LIVE, if_nobody_waits: str = KEEP) -> Publication:
        """Publish a message as a message throw event would (engine/runtime/messages.py): every
        running instance that waits for ``name`` with ``correlation_key`` receives it with
        ``variables``; when none does, a process whose message start event has the name is
        started; when none is, it is kept for ``time_to_live`` (an ISO 8601 duration), or, with
        ``if_nobody_waits="fail"``, MessageNotDelivered is raised and nothing is saved."""
        variables = dict(variables or {})
        check_json_object(variables, "message's variables")
        if if_nobody_waits not in (KEEP, FAIL):
            raise ValueError(f"if_nobody_waits must be {KEEP!r} or {FAIL!r}, not {if_nobody_waits!r}")

        def step(session: Session) -> Publication:
            publication = self._messages.publish(session, name, str(correlation_key), json_payload(variables),
                                                 self.clock(), time_to_live=time_to_live)
            if if_nobody_waits == FAIL and not (publication.delivered_to or publication.started
                                                or publication.deferred):
                if correlation_key:
                    raise MessageNotDelivered(_("No instance waits for the message %(message)s with the correlation "
                                                "key %(key)s and no process starts with it: it was not kept.",
                                                message=repr(name), key=repr(str(correlation_key))))
                raise MessageNotDelivered(_("No instance waits for the message %(message)s and no process starts "
                                            "with it: it was not kept.", message=repr(name)))
            return publication

        return self.atomically(step)

    def deliver_messages(self, now: datetime | None = None, limit: int = 100) -> dict[str, int]:
        """The scheduler's sweep of kept messages: those past their time expire, those that a
        running instance waits for (two concurrent steps missed each other) are delivered, one
        transaction per message. Returns the counts."""
        now = now or self.clock()
        with self.transaction() as session:
            expired = self._messages.expire(session, now)
        with self.reading() as session:
            waiting = self._messages.undelivered(session, now, limit)
        delivered = 0
        for message_id in waiting:
            def step(session: Session, message_id=message_id) -> bool:
                message = self._messages.lock_pending(session, message_id, now)
                outcome = self._messages.deliver(session, message, now, start_processes=False) if message else None
                return bool(outcome and outcome[0])

            delivered += self.atomically(step)
        return {"expired": expired, "delivered": delivered}

    def _receive_message(self, session: Session, instance_id: int, message: Message, now: datetime) -> str | None:
        """One step of ``instance_id`` that receives ``message``; the element that received it,
        or None when the instance does not wait for it (any more)."""
        live = lock_instance(session, sql.LOCK_INSTANCE, instance_id=instance_id)
        if live is None or live.status != InstanceStatus.RUNNING:
            return None
        workflow = self._load(live, session)
        waiting = [s for s in subscriptions(workflow).values() if s.name == message.name and s.key == message.key]
        if not waiting:
            return None
        event = incoming(message.name, message.key, message.payload)
        self._stepper.advance(session, live, workflow, now, actor=None,
                              changed=lambda: workflow.event_manager.catch(event, internal=False))
        return waiting[0].element_id

    def _start_by_message(self, session: Session, definition_id: int, message: Message, now: datetime) -> int:
        definition = session.get(ProcessDefinition, definition_id)
        return self._start_in(session, definition.id, definition.key, definition.version, dict(message.payload),
                              None, None, None, now, message=message)

    # -- work items ------------------------------------------------------------------

    def work_item(self, item_id: int) -> WorkItem:
        with self.reading() as session:
            return work_items.get_item(session, item_id)

    def work_items(
        self,
        *,
        assignee: str | None = None,
        queue_of: str | None = None,
        candidate_group: str | None = None,
        status: str | None = ItemStatus.OPEN,
        overdue: bool | None = None,
        instance_id: int | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[WorkItem]:
        """Work items, soonest deadline first.

        ``assignee``: items assigned to that user. ``queue_of``: unassigned items that
        user may claim (a candidate by name or through a group). ``candidate_group``:
        items offered to that group. ``overdue``: due before now (True) or not (False).
        """
        with self.reading() as session:
            query = queries.WorkItemQuery(status=status, instance_id=instance_id)
            if assignee is not None:
                query = query.within(queries.assigned_to(people.get_user(session, assignee).id))
            if queue_of is not None:
                user = people.get_user(session, queue_of)
                query = query.within(queries.queue_of(user.username, [group.name for group in user.groups]))
            if candidate_group is not None:
                query = query.within(queries.offered_to([candidate_group]))
            if overdue is True:
                query = query.overdue(self.clock())
            elif overdue is False:
                query = query.not_overdue(self.clock())
            return query.items(session, limit, offset)

    def claim(self, item_id: int, user: str) -> WorkItem:
        """Take an unassigned item from a queue the user belongs to."""

        def step(session: Session) -> WorkItem:
            claimer = people.get_user(session, user)
            item = work_items.lock_item(session, item_id)
            work_items.require_open(item)
            if item.assignee_id == claimer.id:
                return item
            if item.assignee_id is not None:
                raise WorkItemClosed(item.id, ASSIGNED, item.assignee.username)
            if not people.is_candidate(claimer, item):
                raise NotACandidate(claimer.username, item.id, item.name)
            work_items.claim_in(session, item, claimer, self.clock())
            return item

        return self.atomically(step)

    def reassign(self, item_id: int, to_user: str, by_user: str, reason: str | None = None) -> WorkItem:
        """Hand an item to another performer. Allowed to its assignee, to whoever is
        responsible for the assignee or for one of the item's groups, and to admins."""

        def step(session: Session) -> WorkItem:
            actor = people.get_user(session, by_user)
            item = work_items.lock_item(session, item_id)
            work_items.require_open(item)
            if not people.may_reassign(session, actor, item):
                raise NotAuthorized(_("%(user)s may not reassign work item %(item_id)s (%(item)s).",
                                      user=actor.username, item_id=item.id, item=item.name), code="may_not_reassign")
            self.reassign_in(session, item, to_user, actor=actor.username, reason=reason)
            return item

        return self.atomically(step)

    def reassign_in(self, session: Session, item: WorkItem | int, to_user: str, *, actor: str | None,
                    reason: str | None) -> bool:
        """Inside the caller's transaction, hand an open item to ``to_user`` (who must be an
        active user), with no check of who may: for the engine's services and the layers
        above that check their own rules (the escalation ladder, the CRM's hand-over).
        Bumps the item's version, records the reassignment, and the listeners hear of it;
        False when the item was ``to_user``'s already."""
        if isinstance(item, int):
            item = work_items.lock_item(session, item)
        target = people.get_user(session, to_user)
        return work_items.reassign_in(session, item, target, actor=actor, reason=reason, now=self.clock())

    def raise_priority_in(self, session: Session, item: WorkItem, priority: int) -> bool:
        """Inside the caller's transaction, raise an open item's priority (the escalation
        ladder's head rung); False when it was that high already."""
        return work_items.raise_priority_in(session, item, priority)

    def complete(
        self,
        item_id: int,
        data: dict[str, Any] | None,
        user: str,
        expected_version: int | None = None,
    ) -> CompletedItem:
        """Complete a human step with the values of its form and run the process on.

        Raises StaleWorkItem when ``expected_version`` is not the item's version,
        WorkItemClosed when it is already completed or cancelled, InvalidFormData for
        values that do not fit the form, ProcessFailed when the process itself fails
        (nothing is saved then)."""
        data = dict(data or {})

        def step(session: Session) -> CompletedItem:
            users = UserRows(session)
            performer = users.get(user)
            live = lock_instance(session, sql.LOCK_INSTANCE_OF_ITEM, item_id=item_id)
            if live is None:
                raise WorkItemNotFound(item_id)
            item = session.execute(sql.LOCK_ITEM, {"item_id": item_id}).one()
            if item.status != ItemStatus.OPEN:
                raise WorkItemClosed(item.id, item.status, users.name_of(item.completed_by_id))
            if expected_version is not None and item.version != expected_version:
                raise StaleWorkItem(item.id, expected_version, item.version)
            if item.assignee_id is None:
                if session.execute(sql.IS_CANDIDATE, {"item_id": item.id, "username": performer.username,
                                                   "user_id": performer.id}).first() is None:
                    raise NotACandidate(performer.username, item.id, item.name)
            elif item.assignee_id != performer.id:
                raise NotAuthorized(_("Work item %(item_id)s (%(item)s) is assigned to %(user)s.", item_id=item.id,
                                      item=item.name, user=users.name_of(item.assignee_id)),
                                    code="assigned_to_someone_else")

            workflow = self._load(live, session)
            task = workflow.get_task_from_id(UUID(item.task_id))
            if task is None or task.state != TaskState.READY:
                raise WorkItemClosed(item.id, NO_LONGER_ACTIVE, None)
            values = clean_submission(item.name, getattr(task.task_spec, "form", None), data)
            submitted = json_safe(values)
            now = self.clock()
            versioned_write(session, sql.COMPLETE_ITEM, item.id, item.version, {
                "status": ItemStatus.COMPLETED, "completed_at": now, "submitted_data": submitted,
                "assignee_id": item.assignee_id or performer.id, "completed_by_id": performer.id,
            })
            record(session, EventType.WORK_ITEM_COMPLETED, now, performer.username, live.id, item.id,
                   item.task_spec, detail={"data": submitted})

            def run_task():
                task.data.update(values)
                task.run()

            self._stepper.advance(session, live, workflow, now, actor=performer.username, changed=run_task,
                                  completed=item, users=users)
            return CompletedItem(item.id, live.id, item.name, item.stage, ItemStatus.COMPLETED,
                                 item.version + 1, performer.username, now, submitted)

        return self.atomically(step)

    def current_data(self, instance: ProcessInstance, session: Session | None = None) -> dict[str, Any]:
        """The process variables of an instance now (``session``: read them in that transaction)."""
        return workflow_data(self._load(instance, session))

    def task_spec(self, definition: ProcessDefinition, bpmn_id: str, session: Session | None = None):
        """The spec of the task ``bpmn_id`` of a deployed version: its form, properties, lane."""
        return find_task_spec(*self._spec(definition.id, definition.key, session), bpmn_id)

    # -- internals -------------------------------------------------------------------

    def _spec(self, definition_id: int, key: str, session: Session | None = None):
        """(process spec, subprocess specs) of a deployed version, parsed once."""
        if session is not None:
            return self._specs.of(definition_id, key, session)
        with self.reading() as reader:
            return self._specs.of(definition_id, key, reader)

    def _load(self, instance: ProcessInstance | LiveInstance, session: Session | None = None) -> BpmnWorkflow:
        spec, subprocess_specs = self._spec(instance.definition_id, instance.process_key, session)
        return self._codec.loads(instance.state, spec, subprocess_specs, self.script_engine)
