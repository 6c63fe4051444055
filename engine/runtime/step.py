"""One step of a process instance: run the workflow to its next wait state, then write
what follows — its state, its work items (opened, cancelled), its stages and its history.

Every ready human task has exactly one open work item, so the workflow itself says which
items are open, and with what stage, without asking the database. The step reads the
instance and the work item as plain rows and writes with statements built once
(``engine.runtime.statements``): building an SQLAlchemy statement and its cache key costs
more than SQLite takes to run it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.bpmn.messages import incoming, subscriptions, take_outgoing
from engine.bpmn.timers import step_moment
from engine.deadlines.calendar import due_calculator_for
from engine.errors import ProcessFailed, UnknownUser
from engine.models import EventType, HistoryEvent, InstanceStatus, ItemStatus
from engine.runtime import statements as sql
from engine.runtime.assignment import DueCalculator, resolve_assignment, stage_of
from engine.runtime.compaction import compact
from engine.runtime.history import note_process, record, record_events
from engine.runtime.messages import Messages
from engine.runtime.state import StateCodec


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


def lock_instance(session: Session, statement, **params: Any) -> LiveInstance | None:
    row = session.execute(statement, params).first()
    return LiveInstance(*row) if row is not None else None


class UserRows:
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


def versioned_write(session: Session, statement, row_id: int, version: int, values: dict[str, Any]) -> None:
    params = {f"b_{name}": value for name, value in values.items()}
    result = session.execute(statement, {"b_id": row_id, "b_version": version, **params})
    if result.rowcount != 1:
        raise StaleDataError(f"row {row_id} changed under this step (expected version {version})")


# How many kept messages one step receives, one after another, before it stops.
MAX_KEPT_MESSAGES = 20


class Stepper:
    """Runs steps with the engine's script engine, deadline calculator, state codec and
    message outbox."""

    def __init__(self, script_engine, due_calculator: DueCalculator, codec: StateCodec, messages: Messages):
        self.script_engine = script_engine
        self.due_calculator = due_calculator
        self.codec = codec
        self.messages = messages

    def advance(self, session: Session, live: LiveInstance, workflow: BpmnWorkflow, now: datetime,
                 actor: str | None, changed: Callable[[], None], completed: Row | None = None,
                 users: UserRows | None = None, started: bool = False) -> None:
        """Apply ``changed`` to the workflow, run it to its next wait state, and write
        the state, the work items and the history that follow. ``completed`` is the work
        item this step completes, already written so; ``started``: the instance begins with
        this step (nothing of it is written yet)."""
        note_process(session, live.id, live.process_key)
        finished_before = {t.id for t in all_tasks(workflow) if t.has_state(TaskState.FINISHED_MASK)}
        # Every ready human task has exactly one open work item: the workflow says which
        # items are open, and with what stage, without asking the database.
        ready_before = ready_human_tasks(workflow)
        timers_before = due_timer_count(workflow, now)
        try:
            waiting_before = {} if started else subscriptions(workflow)
            with step_moment(now):  # the step's timers tell the time by the step's moment
                changed()
                run_to_wait_state(workflow)
                received = self._receive_kept(session, live.id, workflow, waiting_before, now)
            waiting_after = {} if workflow.is_completed() else subscriptions(workflow)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(describe_failure(problem)) from problem
        outgoing = take_outgoing(workflow)

        if timers_before:
            record(session, EventType.TIMER_FIRED, now, None, live.id, detail={"count": timers_before})
        record_events(session, [
            HistoryEvent(instance_id=live.id, type=EventType.TASK_COMPLETED, at=now, actor=actor,
                         task_spec=t.task_spec.bpmn_id, detail={"name": t.task_spec.bpmn_name})
            for t in all_tasks(workflow)
            if t.id not in finished_before and t.state == TaskState.COMPLETED and t.task_spec.bpmn_id
        ])
        current_stage = self._sync_work_items(session, live, workflow, ready_before, now, completed,
                                              users or UserRows(session))
        for message, element in received:
            self.messages.received(session, live.id, message, element, now)
        self.messages.sync_subscriptions(session, live.id, waiting_before, waiting_after, now)

        if workflow.is_completed():
            record(session, EventType.INSTANCE_COMPLETED, now, actor, live.id)
            status, ended_at, current_stage, next_wakeup_at = InstanceStatus.COMPLETED, now, None, None
        else:
            status, ended_at, next_wakeup_at = live.status, live.ended_at, next_wakeup(workflow)
            compact(workflow)
        versioned_write(session, sql.SAVE_INSTANCE, live.id, live.version, {
            "state": self.codec.dumps(workflow), "status": status, "ended_at": ended_at,
            "current_stage": current_stage, "next_wakeup_at": next_wakeup_at, "updated_at": now,
        })
        # Published once the instance is saved: a receiver may answer within this transaction.
        self.messages.publish_outgoing(session, live.id, outgoing, now)

    def _receive_kept(self, session: Session, instance_id: int, workflow: BpmnWorkflow, waiting_before: dict,
                      now: datetime) -> list:
        """Kept messages for the tasks that began to wait in this step: caught, and the
        workflow run on; [(message, element that received it)]."""
        checked, received = set(waiting_before), []
        for _ in range(MAX_KEPT_MESSAGES):
            waiting = subscriptions(workflow)
            fresh = [subscription for ref, subscription in waiting.items() if ref not in checked]
            checked.update(waiting)
            found = next(((message, subscription) for subscription in fresh
                          if (message := self.messages.kept_message_for(session, instance_id, subscription, now))),
                         None)
            if found is None:
                break
            message, subscription = found
            workflow.event_manager.catch(incoming(message.name, message.key, message.payload), internal=False)
            received.append((message, subscription.element_id))
            run_to_wait_state(workflow)
        return received

    def _sync_work_items(self, session: Session, live: LiveInstance, workflow: BpmnWorkflow,
                         ready_before: dict[str, Any], now: datetime, completed: Row | None,
                         users: UserRows) -> str | None:
        """Open a work item for every newly ready human task and cancel those whose task
        is gone; record the stages entered and left; return the instance's current stage."""
        ready_after = ready_human_tasks(workflow)
        gone = [task_id for task_id in ready_before if task_id not in ready_after
                and (completed is None or task_id != completed.task_id)]
        if gone:
            cancelled = session.execute(sql.OPEN_ITEMS_OF_TASKS, {"instance_id": live.id, "task_ids": gone})
            for item in cancelled:
                versioned_write(session, sql.CANCEL_ITEM, item.id, item.version,
                                 {"status": ItemStatus.CANCELLED, "completed_at": now})
                record(session, EventType.WORK_ITEM_CANCELLED, now, None, live.id, item.id, item.task_spec,
                        detail={"reason": "the process moved on without this step"})
        opened = [self._create_item(session, live, task, now, users)
                  for task_id, task in ready_after.items() if task_id not in ready_before]

        stages_before = {stage_of(task.task_spec) for task in ready_before.values()}
        stages_after = {stage_of(task.task_spec) for task in ready_after.values()}
        for stage in sorted(stages_before - stages_after):
            record(session, EventType.STAGE_LEFT, now, None, live.id, detail={"stage": stage})
        for stage in sorted(stages_after - stages_before):
            record(session, EventType.STAGE_ENTERED, now, None, live.id, detail={"stage": stage})
        if opened:
            return opened[-1]
        if live.current_stage in stages_after:
            return live.current_stage
        return min(stages_after, default=None)

    def _create_item(self, session: Session, live: LiveInstance, task, now: datetime, users: UserRows) -> str:
        """Open the work item of a ready human task; returns its stage."""
        try:
            due_calculator = due_calculator_for(self.due_calculator, task.task_spec.lane,
                                                getattr(task.task_spec, "candidate_groups", None))
            assignment = resolve_assignment(task, self.script_engine.evaluate, now, due_calculator)
        except SpiffWorkflowException as problem:
            raise ProcessFailed(describe_failure(problem)) from problem
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
            "status": ItemStatus.OPEN,
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
        record(session, EventType.WORK_ITEM_CREATED, now, None, live.id, item_id, spec.bpmn_id, detail=detail)
        return assignment.stage


def ready_human_tasks(workflow: BpmnWorkflow) -> dict[str, Any]:
    return {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}


def all_tasks(workflow: BpmnWorkflow):
    yield from workflow.tasks.values()
    for subprocess in workflow.subprocesses.values():
        yield from subprocess.tasks.values()


def run_to_wait_state(workflow: BpmnWorkflow) -> None:
    # A fired timer's successors become ready only on the next pass; loop until nothing
    # the engine can run is left (bounded, so a designer's endless loop cannot hang us).
    for _ in range(100):
        workflow.do_engine_steps()
        if not any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY)):
            return
    raise ProcessFailed("The process kept running without reaching a wait state after 100 passes: "
                        "check it for a loop without a user task or timer.")


def due_timer_count(workflow: BpmnWorkflow, now: datetime) -> int:
    return sum(1 for moment in timer_moments(workflow) if moment <= now)


def next_wakeup(workflow: BpmnWorkflow) -> datetime | None:
    return min(timer_moments(workflow), default=None)


def timer_moments(workflow: BpmnWorkflow):
    for event in workflow.waiting_events():
        # TimeDateEventDefinition, DurationTimerEventDefinition, CycleTimerEventDefinition
        if event.event_type.endswith(("TimerEventDefinition", "TimeDateEventDefinition")) and isinstance(event.value, str):
            moment = datetime.fromisoformat(event.value)
            yield moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def workflow_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The process variables now: the finished workflow's, else those of its latest task."""
    if workflow.is_completed():
        return dict(workflow.data)
    task = workflow.last_task or workflow.task_tree
    return dict(task.data)


def describe_failure(problem: SpiffWorkflowException) -> str:
    task = getattr(problem, "task", None)
    spec = getattr(problem, "task_spec", None) or (task.task_spec if task is not None else None)
    where = ""
    if spec is not None and getattr(spec, "bpmn_id", None):
        name = f" ({spec.bpmn_name})" if spec.bpmn_name else ""
        where = f"'{spec.bpmn_id}'{name}: "
    message = str(problem)
    return message if where and f"'{spec.bpmn_id}'" in message else f"{where}{message}"


def check_json_object(data: dict[str, Any], what: str) -> None:
    try:
        json.dumps(data)
    except (TypeError, ValueError) as problem:
        raise ValueError(f"The {what} must be plain JSON values: {problem}") from None
    if not all(isinstance(key, str) and key.isidentifier() for key in data):
        bad = [key for key in data if not (isinstance(key, str) and key.isidentifier())]
        raise ValueError(f"The {what} has keys that are not variable names: {bad}")
