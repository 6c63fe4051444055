"""The engine facade: the one API the CLI, the web UI, the REST API and the benchmarks use.

Every call that changes something is one database transaction: the instance's state,
its work items and its history commit together or not at all. On PostgreSQL the
instance row is locked (``FOR UPDATE``) for the step; on SQLite write transactions
begin IMMEDIATE. Locks are always taken instance first, then work item, so two steps
never wait on each other in a circle.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from engine import people
from engine.bpmn.forms import clean_submission, form_fields, json_safe
from engine.bpmn.scripting import SandboxedScriptEngine
from engine.bpmn.validation import Bundle, load_bundle, validate_paths
from engine.db import create_db_engine, session_factories
from engine.deadlines.calendar import BusinessCalendars, WorkingCalendar, business_calendars_of, due_calculator_for
from engine.deadlines.escalation import EscalationService
from engine.errors import (
    NotAuthorized,
    NotFound,
    ProcessFailed,
    ProcessNotDeployed,
    StaleWorkItem,
    UnknownUser,
    WorkItemClosed,
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
from engine.runtime.assignment import DueCalculator, resolve_assignment, stage_of
from engine.runtime.compaction import compact
from engine.runtime.state import StateCodec

T = TypeVar("T")

BPMN_SUFFIXES = (".bpmn", ".dmn")
# SQLite reports a busy database and PostgreSQL a deadlock as OperationalError; an instance
# whose version counter moved under us (its UPDATE matched no row) as StaleDataError.
RETRYABLE = (StaleDataError, OperationalError)
MAX_ATTEMPTS = 5
# Listeners that record history hand it to the listeners again; a loop between them is a bug.
MAX_LISTENER_ROUNDS = 5
DEFAULT_CALENDAR = WorkingCalendar()
# Where a write session collects the history events of its transaction, in order, and
# the process key of each instance the transaction stepped.
EVENTS_KEY = "crmflow_events"
KEYS_KEY = "crmflow_process_keys"

StepListener = Callable[[Session, list[HistoryEvent]], None]

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
        self._read, self._write = session_factories(self.db)
        self.clock = clock
        # Deadlines count working time (CRMFLOW_CALENDAR, else the Russian production calendar).
        self.due_calculator = due_calculator or BusinessCalendars.from_environment()
        self.script_engine = SandboxedScriptEngine()
        self._codec = StateCodec()
        self._specs: dict[int, tuple[Any, dict]] = {}
        self._specs_lock = threading.Lock()
        self._listeners: list[tuple[StepListener, frozenset[str] | None]] = []
        # Every deadline gets its escalation ladder, whichever front end created the item.
        self.escalation = EscalationService(self, calendars=business_calendars_of(self.due_calculator)).install()
        # Layers above the engine (the CRM domain) register their step listeners here, so that
        # every Engine (CLI, worker, web UI, tests) keeps their records in step with the processes.
        for plugin in entry_points(group="crmflow.engine_plugins"):
            plugin.load()(self)

    @property
    def working_calendar(self) -> WorkingCalendar:
        """The company's calendar that lateness is counted in (the default production calendar
        when deadlines are counted in calendar time)."""
        calendars = business_calendars_of(self.due_calculator)
        return calendars.company if calendars is not None else DEFAULT_CALENDAR

    # -- set-up ----------------------------------------------------------------------

    def init_db(self) -> None:
        """Create or upgrade the schema to the latest Alembic revision: the engine's, then
        that of every installed layer (the ``crmflow.migrations`` entry points)."""
        from engine.migrations import upgrade

        upgrade(self.db)
        for layer in entry_points(group="crmflow.migrations"):
            layer.load()(self.db)

    def dispose(self) -> None:
        self.db.dispose()

    # -- the unit of work ------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading what the facade's calls do not cover. It writes nothing:
        changes made through it are never committed."""
        with self._read() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One write transaction. What the block writes, the history it records
        (events handed to the listeners) and what the step listeners write for that
        history commit together or not at all. It is not retried: for work that may lose a
        race with a concurrent writer, use ``atomically``."""
        with self._write.begin() as session:
            yield session
            self._finish(session)

    def atomically(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one transaction (as ``transaction``), run again from the start
        when it lost a race with a concurrent writer (a busy SQLite, a PostgreSQL deadlock, a
        row whose version moved): up to five attempts."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except RETRYABLE:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def add_listener(self, listener: StepListener, process_keys: Iterable[str] | None = None) -> None:
        """Call ``listener(session, events)`` at the end of every write transaction that
        recorded history — only with the events of ``process_keys``' instances, when
        given — inside that transaction: what the listener writes commits or rolls back
        with the step. History a listener records is handed to the listeners in turn.
        Side effects outside the database (mail, webhooks) must not happen here; record
        them (an outbox) and send after the commit. Listeners run in every step, so they
        must be cheap when a step is none of their business."""
        self._listeners.append((listener, frozenset(process_keys) if process_keys is not None else None))

    def _finish(self, session: Session) -> None:
        """Write the transaction's history and tell the listeners, round by round: what a
        listener records (a reassignment, say) reaches the listeners in the next round."""
        for _ in range(MAX_LISTENER_ROUNDS):
            events = _write_history(session)
            if not events:
                return
            self._notify(session, events)
        raise ProcessFailed(f"The step listeners kept recording history for {MAX_LISTENER_ROUNDS} rounds: "
                            "one of them reacts to its own events.")

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
            return list(session.scalars(select(User).options(selectinload(User.groups)).order_by(User.username)))

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
        results = []
        with self.transaction() as session:
            for key, model in sorted(bundle.processes.items()):
                sources = _process_sources(bundle, model)
                content_hash = _content_hash(sources)
                latest = _latest_definition(session, key)
                if latest is not None and latest.content_hash == content_hash:
                    results.append(DeployResult(key, latest.version, latest.id, created=False))
                    continue
                definition = ProcessDefinition(
                    key=key,
                    version=(latest.version + 1) if latest else 1,
                    name=model.name,
                    content_hash=content_hash,
                    sources=sources,
                    deployed_at=self.clock(),
                    deployed_by=deployed_by,
                )
                session.add(definition)
                session.flush()
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
    ) -> ProcessInstance:
        """Start the latest version of a process and run it to its first wait state."""
        data = dict(data or {})
        _check_json_object(data, "start data")

        def step(session: Session) -> ProcessInstance:
            if started_by is not None:
                people.get_user(session, started_by)
            definition = _latest_definition(session, process_key)
            if definition is None:
                raise ProcessNotDeployed(process_key)
            spec, subprocess_specs = self._spec(definition.id, process_key, session)
            workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
            for task in workflow.get_tasks(state=TaskState.READY):
                task.data.update(data)
            now = self.clock()
            row = {"definition_id": definition.id, "process_key": process_key, "business_key": business_key,
                   "status": InstanceStatus.RUNNING.value, "state": "", "version": 1, "started_by": started_by,
                   "started_at": now, "updated_at": now}
            instance_id = session.execute(sql.INSERT_INSTANCE, row).inserted_primary_key[0]
            live = LiveInstance(instance_id, 1, definition.id, process_key, row["status"], None, None, "")
            _record(session, EventType.INSTANCE_STARTED, now, started_by, instance_id,
                    detail={"version": definition.version, "business_key": business_key})
            self._advance(session, live, workflow, now, actor=started_by, changed=lambda: None)
            return session.get(ProcessInstance, instance_id)

        return self.atomically(step)

    def instance(self, instance_id: int) -> InstanceDetails:
        with self.reading() as session:
            instance = session.get(ProcessInstance, instance_id)
            if instance is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            workflow = self._load(instance, session)
            history = list(session.scalars(
                select(HistoryEvent).where(HistoryEvent.instance_id == instance_id).order_by(HistoryEvent.id)
            ))
            items = list(session.scalars(
                select(WorkItem).where(WorkItem.instance_id == instance_id, WorkItem.status == ItemStatus.OPEN.value)
                .options(selectinload(WorkItem.candidates)).order_by(WorkItem.id)
            ))
        return InstanceDetails(instance, workflow_data(workflow), items, history)

    def wake(self, instance_id: int) -> ProcessInstance:
        """Fire the instance's due timers and run what follows them."""

        def step(session: Session) -> ProcessInstance:
            live = _lock_instance(session, sql.LOCK_INSTANCE, instance_id=instance_id)
            if live is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            if live.status == InstanceStatus.RUNNING.value:
                workflow = self._load(live, session)
                self._advance(session, live, workflow, self.clock(), actor=None, changed=workflow.refresh_timers)
            return session.get(ProcessInstance, instance_id)

        return self.atomically(step)

    def due_instances(self, now: datetime | None = None, limit: int = 100) -> list[int]:
        """Running instances with a timer due at ``now``, soonest first."""
        now = now or self.clock()
        with self.reading() as session:
            return list(session.scalars(
                select(ProcessInstance.id)
                .where(ProcessInstance.status == InstanceStatus.RUNNING.value, ProcessInstance.next_wakeup_at <= now)
                .order_by(ProcessInstance.next_wakeup_at)
                .limit(limit)
            ))

    # -- work items ------------------------------------------------------------------

    def work_item(self, item_id: int) -> WorkItem:
        with self.reading() as session:
            return _get_item(session, item_id)

    def work_items(
        self,
        *,
        assignee: str | None = None,
        queue_of: str | None = None,
        candidate_group: str | None = None,
        status: str | None = ItemStatus.OPEN.value,
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
            item = _lock_item(session, item_id)
            _require_open(item)
            if item.assignee_id == claimer.id:
                return item
            if item.assignee_id is not None:
                raise WorkItemClosed(item.id, "assigned", item.assignee.username)
            if not people.is_candidate(claimer, item):
                raise NotAuthorized(f"{claimer.username} is not a candidate for work item {item.id} ({item.name}).")
            item.assignee = claimer
            item.version += 1
            _record(session, EventType.WORK_ITEM_CLAIMED, self.clock(), claimer.username, item.instance_id, item.id,
                    item.task_spec)
            return item

        return self.atomically(step)

    def reassign(self, item_id: int, to_user: str, by_user: str, reason: str | None = None) -> WorkItem:
        """Hand an item to another performer. Allowed to its assignee, to whoever is
        responsible for the assignee or for one of the item's groups, and to admins."""

        def step(session: Session) -> WorkItem:
            actor = people.get_user(session, by_user)
            target = people.get_user(session, to_user)
            if not target.active:
                raise NotAuthorized(f"{target.username} is no longer active and cannot receive work.")
            item = _lock_item(session, item_id)
            _require_open(item)
            if not people.may_reassign(session, actor, item):
                raise NotAuthorized(f"{actor.username} may not reassign work item {item.id} ({item.name}).")
            previous = item.assignee.username if item.assignee else None
            item.assignee = target
            item.version += 1
            _record(session, EventType.WORK_ITEM_REASSIGNED, self.clock(), actor.username, item.instance_id, item.id,
                    item.task_spec, detail={"from": previous, "to": target.username, "reason": reason})
            return item

        return self.atomically(step)

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
            users = _UserRows(session)
            performer = users.get(user)
            live = _lock_instance(session, sql.LOCK_INSTANCE_OF_ITEM, item_id=item_id)
            if live is None:
                raise NotFound(f"There is no work item {item_id}.")
            item = session.execute(sql.LOCK_ITEM, {"item_id": item_id}).one()
            if item.status != ItemStatus.OPEN.value:
                raise WorkItemClosed(item.id, item.status, users.name_of(item.completed_by_id))
            if expected_version is not None and item.version != expected_version:
                raise StaleWorkItem(item.id, expected_version, item.version)
            if item.assignee_id is None:
                if session.execute(sql.IS_CANDIDATE, {"item_id": item.id, "username": performer.username,
                                                   "user_id": performer.id}).first() is None:
                    raise NotAuthorized(f"{performer.username} is not a candidate for work item {item.id} ({item.name}).")
            elif item.assignee_id != performer.id:
                raise NotAuthorized(f"Work item {item.id} ({item.name}) is assigned to "
                                    f"{users.name_of(item.assignee_id)}.")

            workflow = self._load(live, session)
            task = workflow.get_task_from_id(UUID(item.task_id))
            if task is None or task.state != TaskState.READY:
                raise WorkItemClosed(item.id, "no longer active in its process", None)
            values = clean_submission(item.name, getattr(task.task_spec, "form", None), data)
            submitted = json_safe(values)
            now = self.clock()
            _versioned_write(session, sql.COMPLETE_ITEM, item.id, item.version, {
                "status": ItemStatus.COMPLETED.value, "completed_at": now, "submitted_data": submitted,
                "assignee_id": item.assignee_id or performer.id, "completed_by_id": performer.id,
            })
            _record(session, EventType.WORK_ITEM_COMPLETED, now, performer.username, live.id, item.id,
                    item.task_spec, detail={"data": submitted})

            def run_task():
                task.data.update(values)
                task.run()

            self._advance(session, live, workflow, now, actor=performer.username, changed=run_task,
                          completed=item, users=users)
            return CompletedItem(item.id, live.id, item.name, item.stage, ItemStatus.COMPLETED.value,
                                 item.version + 1, performer.username, now, submitted)

        return self.atomically(step)

    def current_data(self, instance: ProcessInstance, session: Session | None = None) -> dict[str, Any]:
        """The process variables of an instance now (``session``: read them in that transaction)."""
        return workflow_data(self._load(instance, session))

    def task_spec(self, definition: ProcessDefinition, bpmn_id: str, session: Session | None = None):
        """The spec of the task ``bpmn_id`` of a deployed version: its form, properties, lane."""
        return find_task_spec(*self._spec(definition.id, definition.key, session), bpmn_id)

    # -- internals -------------------------------------------------------------------

    def _notify(self, session: Session, events: list[HistoryEvent]) -> None:
        keys = session.info.get(KEYS_KEY, {})
        for listener, process_keys in self._listeners:
            if process_keys is None:
                listener(session, events)
                continue
            mine = [event for event in events if _process_key(session, keys, event.instance_id) in process_keys]
            if mine:
                listener(session, mine)

    def _spec(self, definition_id: int, key: str, session: Session | None = None):
        """The parsed spec of a definition version, parsed once per process."""
        cached = self._specs.get(definition_id)
        if cached is None:
            if session is None:
                with self.reading() as reader:
                    sources = reader.scalar(sql.DEFINITION_SOURCES, {"definition_id": definition_id})
            else:
                sources = session.scalar(sql.DEFINITION_SOURCES, {"definition_id": definition_id})
            with self._specs_lock:
                cached = self._specs.get(definition_id)
                if cached is None:
                    files = {name: text.encode("utf-8") for name, text in sources.items()}
                    model = load_bundle(files).processes[key]
                    cached = self._specs[definition_id] = (model.spec, model.subprocess_specs)
        return cached

    def _load(self, instance: ProcessInstance | LiveInstance, session: Session | None = None) -> BpmnWorkflow:
        spec, subprocess_specs = self._spec(instance.definition_id, instance.process_key, session)
        return self._codec.loads(instance.state, spec, subprocess_specs, self.script_engine)

    def _advance(self, session: Session, live: LiveInstance, workflow: BpmnWorkflow, now: datetime,
                 actor: str | None, changed: Callable[[], None], completed: Row | None = None,
                 users: _UserRows | None = None) -> None:
        """Apply ``changed`` to the workflow, run it to its next wait state, and write
        the state, the work items and the history that follow. ``completed`` is the work
        item this step completes, already written so."""
        session.info.setdefault(KEYS_KEY, {})[live.id] = live.process_key
        finished_before = {t.id for t in _all_tasks(workflow) if t.has_state(TaskState.FINISHED_MASK)}
        # Every ready human task has exactly one open work item: the workflow says which
        # items are open, and with what stage, without asking the database.
        ready_before = _ready_human_tasks(workflow)
        timers_before = _due_timer_count(workflow, now)
        try:
            changed()
            _run_to_wait_state(workflow)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(_describe_failure(problem)) from problem

        if timers_before:
            _record(session, EventType.TIMER_FIRED, now, None, live.id, detail={"count": timers_before})
        _add_events(session, [
            HistoryEvent(instance_id=live.id, type=EventType.TASK_COMPLETED.value, at=now, actor=actor,
                         task_spec=t.task_spec.bpmn_id, detail={"name": t.task_spec.bpmn_name})
            for t in _all_tasks(workflow)
            if t.id not in finished_before and t.state == TaskState.COMPLETED and t.task_spec.bpmn_id
        ])
        current_stage = self._sync_work_items(session, live, workflow, ready_before, now, completed,
                                              users or _UserRows(session))

        if workflow.is_completed():
            _record(session, EventType.INSTANCE_COMPLETED, now, actor, live.id)
            status, ended_at, current_stage, next_wakeup_at = InstanceStatus.COMPLETED.value, now, None, None
        else:
            status, ended_at, next_wakeup_at = live.status, live.ended_at, _next_wakeup(workflow)
            compact(workflow)
        _versioned_write(session, sql.SAVE_INSTANCE, live.id, live.version, {
            "state": self._codec.dumps(workflow), "status": status, "ended_at": ended_at,
            "current_stage": current_stage, "next_wakeup_at": next_wakeup_at, "updated_at": now,
        })

    def _sync_work_items(self, session: Session, live: LiveInstance, workflow: BpmnWorkflow,
                         ready_before: dict[str, Any], now: datetime, completed: Row | None,
                         users: _UserRows) -> str | None:
        """Open a work item for every newly ready human task and cancel those whose task
        is gone; record the stages entered and left; return the instance's current stage."""
        ready_after = _ready_human_tasks(workflow)
        gone = [task_id for task_id in ready_before if task_id not in ready_after
                and (completed is None or task_id != completed.task_id)]
        if gone:
            cancelled = session.execute(sql.OPEN_ITEMS_OF_TASKS, {"instance_id": live.id, "task_ids": gone})
            for item in cancelled:
                _versioned_write(session, sql.CANCEL_ITEM, item.id, item.version,
                                 {"status": ItemStatus.CANCELLED.value, "completed_at": now})
                _record(session, EventType.WORK_ITEM_CANCELLED, now, None, live.id, item.id, item.task_spec,
                        detail={"reason": "the process moved on without this step"})
        opened = [self._create_item(session, live, task, now, users)
                  for task_id, task in ready_after.items() if task_id not in ready_before]

        stages_before = {stage_of(task.task_spec) for task in ready_before.values()}
        stages_after = {stage_of(task.task_spec) for task in ready_after.values()}
        for stage in sorted(stages_before - stages_after):
            _record(session, EventType.STAGE_LEFT, now, None, live.id, detail={"stage": stage})
        for stage in sorted(stages_after - stages_before):
            _record(session, EventType.STAGE_ENTERED, now, None, live.id, detail={"stage": stage})
        if opened:
            return opened[-1]
        if live.current_stage in stages_after:
            return live.current_stage
        return min(stages_after, default=None)

    def _create_item(self, session: Session, live: LiveInstance, task, now: datetime, users: _UserRows) -> str:
        """Open the work item of a ready human task; returns its stage."""
        try:
            due_calculator = due_calculator_for(self.due_calculator, task.task_spec.lane,
                                                getattr(task.task_spec, "candidate_groups", None))
            assignment = resolve_assignment(task, self.script_engine.evaluate, now, due_calculator)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(_describe_failure(problem)) from problem
        assignee = users.find(assignment.assignee) if assignment.assignee else None
        spec = task.task_spec
        item_id = session.execute(sql.INSERT_ITEM, {
            "instance_id": live.id,
            "task_id": str(task.id),
            "task_spec": spec.bpmn_id,
            "name": spec.bpmn_name or spec.bpmn_id,
            "stage": assignment.stage,
            "lane": spec.lane,
            "assignee_id": assignee.id if assignee else None,
            "priority": assignment.priority,
            "status": ItemStatus.OPEN.value,
            "version": 1,
            "created_at": now,
            "due_at": assignment.due_at,
        }).inserted_primary_key[0]
        candidates = [{"work_item_id": item_id, "kind": "user", "name": n} for n in assignment.candidate_users]
        candidates += [{"work_item_id": item_id, "kind": "group", "name": n} for n in assignment.candidate_groups]
        if candidates:
            session.execute(sql.INSERT_CANDIDATES, candidates)
        detail = {"assignee": assignment.assignee, "due_at": assignment.due_at.isoformat() if assignment.due_at else None,
                  "candidate_groups": assignment.candidate_groups, "candidate_users": assignment.candidate_users}
        if assignment.assignee and assignee is None:
            detail["unassigned_reason"] = f"{assignment.assignee!r} is not a crmflow user"
        _record(session, EventType.WORK_ITEM_CREATED, now, None, live.id, item_id, spec.bpmn_id, detail=detail)
        return assignment.stage


# -- helpers ---------------------------------------------------------------------------


def read_bpmn_files(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """File name -> content for the given files and the .bpmn/.dmn files in directories."""
    files: dict[str, bytes] = {}
    for path in map(Path, paths):
        candidates = sorted(p for p in path.rglob("*") if p.suffix in BPMN_SUFFIXES) if path.is_dir() else [path]
        for candidate in candidates:
            if not candidate.is_file():
                raise NotFound(f"{candidate}: no such file")
            if candidate.name in files:
                raise ValueError(f"{candidate}: two files are called {candidate.name}; names must be unique")
            files[candidate.name] = candidate.read_bytes()
    return files


def _process_sources(bundle: Bundle, model) -> dict[str, str]:
    """The files one process needs: its own, those of the processes it calls, and the
    decision tables if it has business-rule tasks."""
    specs = [model.spec, *model.subprocess_specs.values()]
    names = {spec.file for spec in specs}
    if any(isinstance(ts, BusinessRuleTask) for spec in specs for ts in spec.task_specs.values()):
        names.update(name for name in bundle.files if name.endswith(".dmn"))
    return {name: bundle.files[name].decode("utf-8") for name in sorted(names)}


def _content_hash(sources: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode("utf-8")).hexdigest()


def _latest_definition(session: Session, key: str) -> ProcessDefinition | None:
    return session.scalar(
        select(ProcessDefinition).where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc()).limit(1)
    )


def find_task_spec(spec, subprocess_specs, bpmn_id: str):
    """The spec of the task a work item's ``task_spec`` names. For a multi-instance task
    that is the spec of one instance (with the form and properties), not the wrapper."""
    for candidate in [spec, *subprocess_specs.values()]:
        if bpmn_id in candidate.task_specs:
            task_spec = candidate.task_specs[bpmn_id]
            if isinstance(task_spec, MultiInstanceTask):
                task_spec = candidate.task_specs[task_spec.task_spec]
            return task_spec
    raise NotFound(f"The process has no task {bpmn_id!r}.")


@dataclass(frozen=True)
class LiveInstance:
    """The instance row a step works on, locked for the step."""

    id: int
    version: int
    definition_id: int
    process_key: str
    status: str
    current_stage: str | None
    ended_at: datetime | None
    state: str


def _lock_instance(session: Session, statement, **params: Any) -> LiveInstance | None:
    row = session.execute(statement, params).first()
    return LiveInstance(*row) if row is not None else None


class _UserRows:
    """The users a step names, each read once."""

    def __init__(self, session: Session):
        self.session = session
        self.by_name: dict[str, Row | None] = {}

    def find(self, username: str) -> Row | None:
        if username not in self.by_name:
            self.by_name[username] = self.session.execute(sql.USER_BY_NAME, {"username": username}).first()
        return self.by_name[username]

    def get(self, username: str) -> Row:
        user = self.find(username)
        if user is None:
            raise UnknownUser(username)
        return user

    def name_of(self, user_id: int | None) -> str | None:
        return None if user_id is None else self.session.scalar(sql.USERNAME_BY_ID, {"user_id": user_id})


def _lock_item(session: Session, item_id: int) -> WorkItem:
    item = session.scalars(sql.ITEM_FOR_UPDATE, {"item_id": item_id}).unique().one_or_none()
    if item is None:
        raise NotFound(f"There is no work item {item_id}.")
    return item


def _get_item(session: Session, item_id: int) -> WorkItem:
    item = session.get(WorkItem, item_id, options=[selectinload(WorkItem.candidates)])
    if item is None:
        raise NotFound(f"There is no work item {item_id}.")
    return item


def _require_open(item: WorkItem) -> None:
    if item.status != ItemStatus.OPEN.value:
        by = item.completed_by.username if item.completed_by else None
        raise WorkItemClosed(item.id, item.status, by)


def _versioned_write(session: Session, statement, row_id: int, version: int, values: dict[str, Any]) -> None:
    params = {f"b_{name}": value for name, value in values.items()}
    result = session.execute(statement, {"b_id": row_id, "b_version": version, **params})
    if result.rowcount != 1:
        raise StaleDataError(f"row {row_id} changed under this step (expected version {version})")


def _record(session: Session, kind: EventType, at: datetime, actor: str | None, instance_id: int,
            item_id: int | None = None, task_spec: str | None = None, detail: dict[str, Any] | None = None) -> None:
    _add_events(session, [HistoryEvent(instance_id=instance_id, work_item_id=item_id, type=kind.value, at=at,
                                       actor=actor, task_spec=task_spec, detail=detail)])


def _add_events(session: Session, events: list[HistoryEvent]) -> None:
    """History events wait in the session until the step is done, then are written in
    one statement (_write_history); nothing needs their ids."""
    session.info.setdefault(EVENTS_KEY, []).extend(events)


def _write_history(session: Session) -> list[HistoryEvent]:
    events = session.info.pop(EVENTS_KEY, [])
    if events:
        session.execute(sql.INSERT_HISTORY, [_row(event) for event in events])
    return events


def _row(event: HistoryEvent) -> dict[str, Any]:
    return {column: getattr(event, column) for column in
            ("instance_id", "work_item_id", "type", "at", "actor", "task_spec", "detail")}


def _process_key(session: Session, keys: dict[int, str], instance_id: int) -> str:
    if instance_id not in keys:  # a claim or a reassignment: no step loaded the instance
        keys[instance_id] = session.scalar(sql.PROCESS_KEY_OF_INSTANCE, {"instance_id": instance_id})
    return keys[instance_id]


def _ready_human_tasks(workflow: BpmnWorkflow) -> dict[str, Any]:
    return {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}


def _all_tasks(workflow: BpmnWorkflow):
    yield from workflow.tasks.values()
    for subprocess in workflow.subprocesses.values():
        yield from subprocess.tasks.values()


def _run_to_wait_state(workflow: BpmnWorkflow) -> None:
    # A fired timer's successors become ready only on the next pass; loop until nothing
    # the engine can run is left (bounded, so a designer's endless loop cannot hang us).
    for _ in range(100):
        workflow.do_engine_steps()
        if not any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY)):
            return
    raise ProcessFailed("The process kept running without reaching a wait state after 100 passes: "
                        "check it for a loop without a user task or timer.")


def _due_timer_count(workflow: BpmnWorkflow, now: datetime) -> int:
    return sum(1 for moment in _timer_moments(workflow) if moment <= now)


def _next_wakeup(workflow: BpmnWorkflow) -> datetime | None:
    return min(_timer_moments(workflow), default=None)


def _timer_moments(workflow: BpmnWorkflow):
    for event in workflow.waiting_events():
        # TimeDateEventDefinition, DurationTimerEventDefinition, CycleTimerEventDefinition
        if event.event_type.endswith(("TimerEventDefinition", "TimeDateEventDefinition")) and isinstance(event.value, str):
            moment = datetime.fromisoformat(event.value)
            yield moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def workflow_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    if workflow.is_completed():
        return dict(workflow.data)
    task = workflow.last_task or workflow.task_tree
    return dict(task.data)


def _describe_failure(problem: SpiffWorkflowException) -> str:
    task = getattr(problem, "task", None)
    spec = getattr(problem, "task_spec", None) or (task.task_spec if task is not None else None)
    where = ""
    if spec is not None and getattr(spec, "bpmn_id", None):
        name = f" ({spec.bpmn_name})" if spec.bpmn_name else ""
        where = f"'{spec.bpmn_id}'{name}: "
    message = str(problem)
    return message if where and f"'{spec.bpmn_id}'" in message else f"{where}{message}"


def _check_json_object(data: dict[str, Any], what: str) -> None:
    try:
        json.dumps(data)
    except (TypeError, ValueError) as problem:
        raise ValueError(f"The {what} must be plain JSON values: {problem}") from None
    if not all(isinstance(key, str) and key.isidentifier() for key in data):
        bad = [key for key in data if not (isinstance(key, str) and key.isidentifier())]
        raise ValueError(f"The {what} has keys that are not variable names: {bad}")
