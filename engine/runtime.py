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
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from engine import people
from engine.assignment import DueCalculator, calendar_due, resolve_assignment
from engine.compaction import compact
from engine.db import create_db_engine, session_factories
from engine.errors import (
    NotAuthorized,
    NotFound,
    ProcessFailed,
    ProcessNotDeployed,
    StaleWorkItem,
    WorkItemClosed,
)
from engine.forms import clean_submission, form_fields, json_safe
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
    WorkItemCandidate,
)
from engine.scripting import SandboxedScriptEngine
from engine.state import StateCodec
from engine.validation import Bundle, load_bundle, validate_paths

T = TypeVar("T")

BPMN_SUFFIXES = (".bpmn", ".dmn")
# SQLite reports a busy database and PostgreSQL a deadlock as OperationalError; an instance
# whose version counter moved under us (its UPDATE matched no row) as StaleDataError.
RETRYABLE = (StaleDataError, OperationalError)
MAX_ATTEMPTS = 5
# Where a write session collects the history events of its transaction, in order.
EVENTS_KEY = "crmflow_events"

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


class Engine:
    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        due_calculator: DueCalculator = calendar_due,
        **engine_options: Any,
    ):
        self.database_url = database_url
        self.db = create_db_engine(database_url, **engine_options)
        self._read, self._write = session_factories(self.db)
        self.clock = clock
        self.due_calculator = due_calculator
        self.script_engine = SandboxedScriptEngine()
        self._codec = StateCodec()
        self._specs: dict[int, tuple[Any, dict]] = {}
        self._specs_lock = threading.Lock()
        self._listeners: list[StepListener] = []

    # -- set-up ----------------------------------------------------------------------

    def init_db(self) -> None:
        """Create or upgrade the schema to the latest Alembic revision."""
        from engine.migrations import upgrade

        upgrade(self.db)

    def dispose(self) -> None:
        self.db.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only session for queries the facade does not cover."""
        with self._read() as session:
            yield session

    # -- people ----------------------------------------------------------------------

    def add_user(self, username: str, display_name: str | None = None, **attributes: Any) -> User:
        with self._write.begin() as session:
            return people.add_user(session, username, display_name, now=self.clock(), **attributes)

    def add_group(self, name: str, display_name: str | None = None, head: str | None = None, members: Sequence[str] = ()):
        with self._write.begin() as session:
            return people.add_group(session, name, display_name, head=head, members=members)

    def users(self) -> list[User]:
        with self._read() as session:
            return list(session.scalars(select(User).options(selectinload(User.groups)).order_by(User.username)))

    def groups(self) -> list[Group]:
        with self._read() as session:
            return list(session.scalars(select(Group).order_by(Group.name)))

    def user(self, username: str) -> User:
        with self._read() as session:
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
        with self._write.begin() as session:
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
        with self._read() as session:
            query = select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)
            if key is not None:
                query = query.where(ProcessDefinition.key == key)
            return list(session.scalars(query))

    def user_task_form(self, item: WorkItem):
        """The form fields of a work item's step, for the UI and the API."""
        with self._read() as session:
            instance = session.get(ProcessInstance, item.instance_id)
            spec, subprocess_specs = self._spec(instance.definition)
        task_spec = _find_task_spec(spec, subprocess_specs, item.task_spec)
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
            spec, subprocess_specs = self._spec(definition)
            workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
            for task in workflow.get_tasks(state=TaskState.READY):
                task.data.update(data)
            now = self.clock()
            instance = ProcessInstance(
                definition=definition,
                process_key=process_key,
                business_key=business_key,
                status=InstanceStatus.RUNNING.value,
                state="",
                started_by=started_by,
                started_at=now,
                updated_at=now,
            )
            session.add(instance)
            _record(session, instance, EventType.INSTANCE_STARTED, now, started_by,
                    detail={"version": definition.version, "business_key": business_key})
            self._advance(session, instance, workflow, now, actor=started_by, changed=lambda: None)
            return instance

        return self._transaction(step)

    def instance(self, instance_id: int) -> InstanceDetails:
        with self._read() as session:
            instance = session.get(ProcessInstance, instance_id)
            if instance is None:
                raise NotFound(f"There is no process instance {instance_id}.")
            workflow = self._load(instance)
            history = list(session.scalars(
                select(HistoryEvent).where(HistoryEvent.instance_id == instance_id).order_by(HistoryEvent.id)
            ))
            items = list(session.scalars(
                select(WorkItem).where(WorkItem.instance_id == instance_id, WorkItem.status == ItemStatus.OPEN.value)
                .options(selectinload(WorkItem.candidates)).order_by(WorkItem.id)
            ))
        return InstanceDetails(instance, _current_data(workflow), items, history)

    def wake(self, instance_id: int) -> ProcessInstance:
        """Fire the instance's due timers and run what follows them."""

        def step(session: Session) -> ProcessInstance:
            instance = _lock_instance(session, instance_id)
            if instance.status != InstanceStatus.RUNNING.value:
                return instance
            workflow = self._load(instance)
            now = self.clock()
            self._advance(session, instance, workflow, now, actor=None, changed=workflow.refresh_timers)
            return instance

        return self._transaction(step)

    def due_instances(self, now: datetime | None = None, limit: int = 100) -> list[int]:
        """Running instances with a timer due at ``now``, soonest first."""
        now = now or self.clock()
        with self._read() as session:
            return list(session.scalars(
                select(ProcessInstance.id)
                .where(ProcessInstance.status == InstanceStatus.RUNNING.value, ProcessInstance.next_wakeup_at <= now)
                .order_by(ProcessInstance.next_wakeup_at)
                .limit(limit)
            ))

    # -- work items ------------------------------------------------------------------

    def work_item(self, item_id: int) -> WorkItem:
        with self._read() as session:
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
        with self._read() as session:
            query = select(WorkItem)
            if assignee is not None:
                query = query.where(WorkItem.assignee_id == people.get_user(session, assignee).id)
            if queue_of is not None:
                user = people.get_user(session, queue_of)
                candidate = or_(
                    (WorkItemCandidate.kind == "user") & (WorkItemCandidate.name == user.username),
                    (WorkItemCandidate.kind == "group") & WorkItemCandidate.name.in_([g.name for g in user.groups]),
                )
                query = query.where(
                    WorkItem.assignee_id.is_(None),
                    WorkItem.id.in_(select(WorkItemCandidate.work_item_id).where(candidate)),
                )
            if candidate_group is not None:
                query = query.where(WorkItem.id.in_(
                    select(WorkItemCandidate.work_item_id).where(
                        WorkItemCandidate.kind == "group", WorkItemCandidate.name == candidate_group
                    )
                ))
            if status is not None:
                query = query.where(WorkItem.status == status)
            if overdue is True:
                query = query.where(WorkItem.due_at < self.clock())
            elif overdue is False:
                query = query.where(or_(WorkItem.due_at.is_(None), WorkItem.due_at >= self.clock()))
            if instance_id is not None:
                query = query.where(WorkItem.instance_id == instance_id)
            query = query.order_by(WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.priority.desc(), WorkItem.id)
            query = query.options(selectinload(WorkItem.candidates))
            return list(session.scalars(query.limit(limit).offset(offset)))

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
            _record(session, None, EventType.WORK_ITEM_CLAIMED, self.clock(), claimer.username, item=item)
            return item

        return self._transaction(step)

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
            _record(session, None, EventType.WORK_ITEM_REASSIGNED, self.clock(), actor.username, item=item,
                    detail={"from": previous, "to": target.username, "reason": reason})
            return item

        return self._transaction(step)

    def complete(
        self,
        item_id: int,
        data: dict[str, Any] | None,
        user: str,
        expected_version: int | None = None,
    ) -> WorkItem:
        """Complete a human step with the values of its form and run the process on.

        Raises StaleWorkItem when ``expected_version`` is not the item's version,
        WorkItemClosed when it is already completed or cancelled, InvalidFormData for
        values that do not fit the form, ProcessFailed when the process itself fails
        (nothing is saved then)."""
        data = dict(data or {})

        def step(session: Session) -> WorkItem:
            performer = people.get_user(session, user)
            instance_id = session.scalar(select(WorkItem.instance_id).where(WorkItem.id == item_id))
            if instance_id is None:
                raise NotFound(f"There is no work item {item_id}.")
            instance = _lock_instance(session, instance_id)
            item = _lock_item(session, item_id)
            _require_open(item)
            if expected_version is not None and item.version != expected_version:
                raise StaleWorkItem(item.id, expected_version, item.version)
            if item.assignee_id is None:
                if not people.is_candidate(performer, item):
                    raise NotAuthorized(f"{performer.username} is not a candidate for work item {item.id} ({item.name}).")
            elif item.assignee_id != performer.id:
                raise NotAuthorized(f"Work item {item.id} ({item.name}) is assigned to {item.assignee.username}.")

            workflow = self._load(instance)
            task = workflow.get_task_from_id(UUID(item.task_id))
            if task is None or task.state != TaskState.READY:
                raise WorkItemClosed(item.id, "no longer active in its process", None)
            values = clean_submission(item.name, getattr(task.task_spec, "form", None), data)
            now = self.clock()
            item.status = ItemStatus.COMPLETED.value
            item.assignee = item.assignee or performer
            item.completed_by = performer
            item.completed_at = now
            item.submitted_data = json_safe(values)
            item.version += 1
            _record(session, instance, EventType.WORK_ITEM_COMPLETED, now, performer.username, item=item,
                    detail={"data": item.submitted_data})

            def run_task():
                task.data.update(values)
                task.run()

            self._advance(session, instance, workflow, now, actor=performer.username, changed=run_task,
                          completed_item=item)
            return item

        return self._transaction(step)

    # -- internals -------------------------------------------------------------------

    def add_listener(self, listener: StepListener) -> None:
        """Call ``listener(session, events)`` at the end of every write transaction that
        recorded history, inside that transaction: what the listener writes commits or
        rolls back with the step. Side effects outside the database (mail, webhooks)
        must not happen here; record them (an outbox) and send after the commit."""
        self._listeners.append(listener)

    def _transaction(self, step: Callable[[Session], T]) -> T:
        """Run ``step`` in one write transaction, retrying when a concurrent writer won."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self._write.begin() as session:
                    result = step(session)
                    events = _write_history(session)
                    for listener in self._listeners if events else ():
                        listener(session, events)
                    return result
            except RETRYABLE:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _spec(self, definition: ProcessDefinition):
        cached = self._specs.get(definition.id)
        if cached is None:
            with self._specs_lock:
                cached = self._specs.get(definition.id)
                if cached is None:
                    files = {name: text.encode("utf-8") for name, text in definition.sources.items()}
                    model = load_bundle(files).processes[definition.key]
                    cached = self._specs[definition.id] = (model.spec, model.subprocess_specs)
        return cached

    def _load(self, instance: ProcessInstance) -> BpmnWorkflow:
        spec, subprocess_specs = self._spec(instance.definition)
        return self._codec.loads(instance.state, spec, subprocess_specs, self.script_engine)

    def _advance(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                 now: datetime, actor: str | None, changed: Callable[[], None],
                 completed_item: WorkItem | None = None) -> None:
        """Apply ``changed`` to the workflow, run it to its next wait state, and write
        the state, the work items and the history that follow. ``completed_item`` is the
        work item this step completes, already marked so."""
        finished_before = {t.id for t in _all_tasks(workflow) if t.has_state(TaskState.FINISHED_MASK)}
        timers_before = _due_timer_count(workflow, now)
        try:
            changed()
            _run_to_wait_state(workflow)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(_describe_failure(problem)) from problem

        completed_now = [
            t for t in _all_tasks(workflow)
            if t.id not in finished_before and t.state == TaskState.COMPLETED and t.task_spec.bpmn_id
        ]
        if timers_before:
            _record(session, instance, EventType.TIMER_FIRED, now, None, detail={"count": timers_before})
        if completed_now:
            _add_events(session, [
                HistoryEvent(type=EventType.TASK_COMPLETED.value, at=now, actor=actor,
                             task_spec=t.task_spec.bpmn_id, detail={"name": t.task_spec.bpmn_name})
                for t in completed_now
            ], instance)
        self._sync_work_items(session, instance, workflow, now, completed_item)

        if workflow.is_completed():
            instance.status = InstanceStatus.COMPLETED.value
            instance.ended_at = now
            instance.current_stage = None
            instance.next_wakeup_at = None
            _record(session, instance, EventType.INSTANCE_COMPLETED, now, actor)
        else:
            instance.next_wakeup_at = _next_wakeup(workflow)
            compact(workflow)
        instance.state = self._codec.dumps(workflow)
        instance.updated_at = now

    def _sync_work_items(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                         now: datetime, completed_item: WorkItem | None) -> None:
        ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
        open_items = [] if instance.id is None else [
            # The identity map hands back items already changed in this step as they are now.
            item for item in session.scalars(
                select(WorkItem).where(WorkItem.instance_id == instance.id, WorkItem.status == ItemStatus.OPEN.value)
            ) if item.status == ItemStatus.OPEN.value
        ]
        stages_before = {item.stage for item in open_items}
        if completed_item is not None:
            stages_before.add(completed_item.stage)
        still_open = []
        for item in open_items:
            if item.task_id in ready:
                still_open.append(item)
                continue
            item.status = ItemStatus.CANCELLED.value
            item.completed_at = now
            item.version += 1
            _record(session, instance, EventType.WORK_ITEM_CANCELLED, now, None, item=item,
                    detail={"reason": "the process moved on without this step"})
        known = {item.task_id for item in open_items}
        for task_id, task in ready.items():
            if task_id not in known:
                still_open.append(self._create_item(session, instance, task, now))

        stages_after = {item.stage for item in still_open}
        for stage in sorted(stages_before - stages_after):
            _record(session, instance, EventType.STAGE_LEFT, now, None, detail={"stage": stage})
        for stage in sorted(stages_after - stages_before):
            _record(session, instance, EventType.STAGE_ENTERED, now, None, detail={"stage": stage})
        newest = max(still_open, key=lambda i: (i.created_at, i.id or 0), default=None)
        instance.current_stage = newest.stage if newest else None

    def _create_item(self, session: Session, instance: ProcessInstance, task, now: datetime) -> WorkItem:
        try:
            assignment = resolve_assignment(task, self.script_engine.evaluate, now, self.due_calculator)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(_describe_failure(problem)) from problem
        assignee = people.find_user(session, assignment.assignee) if assignment.assignee else None
        spec = task.task_spec
        item = WorkItem(
            instance=instance,
            task_id=str(task.id),
            task_spec=spec.bpmn_id,
            name=spec.bpmn_name or spec.bpmn_id,
            stage=assignment.stage,
            lane=spec.lane,
            assignee=assignee,
            priority=assignment.priority,
            status=ItemStatus.OPEN.value,
            created_at=now,
            due_at=assignment.due_at,
            candidates=[WorkItemCandidate(kind="user", name=n) for n in assignment.candidate_users]
            + [WorkItemCandidate(kind="group", name=n) for n in assignment.candidate_groups],
        )
        session.add(item)
        detail = {"assignee": assignment.assignee, "due_at": item.due_at.isoformat() if item.due_at else None,
                  "candidate_groups": assignment.candidate_groups, "candidate_users": assignment.candidate_users}
        if assignment.assignee and assignee is None:
            detail["unassigned_reason"] = f"{assignment.assignee!r} is not a crmflow user"
        _record(session, instance, EventType.WORK_ITEM_CREATED, now, None, item=item, detail=detail)
        return item


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


def _find_task_spec(spec, subprocess_specs, name: str):
    for candidate in [spec, *subprocess_specs.values()]:
        if name in candidate.task_specs:
            return candidate.task_specs[name]
    raise NotFound(f"The process has no task {name!r}.")


def _lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.scalar(
        select(ProcessInstance).where(ProcessInstance.id == instance_id).with_for_update(of=ProcessInstance)
    )
    if instance is None:
        raise NotFound(f"There is no process instance {instance_id}.")
    return instance


def _lock_item(session: Session, item_id: int) -> WorkItem:
    item = session.scalar(
        select(WorkItem).where(WorkItem.id == item_id).with_for_update(of=WorkItem)
        .options(selectinload(WorkItem.candidates))
    )
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


def _record(session: Session, instance: ProcessInstance | None, kind: EventType, at: datetime, actor: str | None,
            item: WorkItem | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append a history event to the transaction's; see _write_history."""
    _add_events(session, [HistoryEvent(
        instance_id=item.instance_id if instance is None else None,
        type=kind.value,
        at=at,
        actor=actor,
        task_spec=item.task_spec if item is not None else None,
        detail=detail,
    )], instance, item)


def _add_events(session: Session, events: list[HistoryEvent], instance: ProcessInstance | None,
                item: WorkItem | None = None) -> None:
    session.info.setdefault(EVENTS_KEY, []).extend((event, instance, item) for event in events)


def _write_history(session: Session) -> list[HistoryEvent]:
    """Write the transaction's history events in one statement, after the step's other
    changes are flushed (an event may name an instance or work item new in this step).
    The events are not added to the session: nothing needs their ids back."""
    pending = session.info.pop(EVENTS_KEY, [])
    if not pending:
        return []
    session.flush()
    events = []
    for event, instance, item in pending:
        if instance is not None:
            event.instance_id = instance.id
        if item is not None:
            event.work_item_id = item.id
        events.append(event)
    session.execute(HistoryEvent.__table__.insert(), [_row(event) for event in events])
    return events


def _row(event: HistoryEvent) -> dict[str, Any]:
    return {column: getattr(event, column) for column in
            ("instance_id", "work_item_id", "type", "at", "actor", "task_spec", "detail")}


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
        if event.event_type.endswith("TimerEventDefinition") and isinstance(event.value, str):
            moment = datetime.fromisoformat(event.value)
            yield moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
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
