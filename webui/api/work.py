"""The API of the process engine: who I am, my work items and my groups' queue, claiming,
completing and reassigning them, starting an instance and reading it with its history.

Who may do what is the UI's rule, from the same policy (``webui.visibility``) and the same
read model (``webui.readmodel``: the overdue board's department for managers); the engine
refuses the rest (a non-candidate's claim, a stale form).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import jsonify, url_for

from engine.errors import ProcessNotDeployed
from engine.bpmn.forms import FieldSpec
from engine.runtime import CompletedItem, InstanceDetails
from processes.crm import CLAIM_PROCESS, DEAL_PROCESSES, PROJECT_TASK_PROCESS
from webui import readmodel
from webui.access import Person, engine
from webui.api import api
from webui.api.errors import ApiError, invalid
from webui.api.operations import STAFF, Parameter, note
from webui.api.schema import array, boolean, free_object, identifier, integer, obj, string
from webui.metrics import engine_step
from webui.readmodel import ItemStatus
from webui.visibility import may_see_instance, may_see_item

MAX_PAGE = 200
MAX_OFFSET = 10_000
SCOPES = readmodel.API_SCOPES
# Processes whose records the CRM keeps (a deal, a claim): they are started through those resources.
_CRM_PROCESSES = {**{key: "POST /customers/{customer_id}/deals" for key in DEAL_PROCESSES.values()},
                  CLAIM_PROCESS: "POST /customers/{customer_id}/claims",
                  PROJECT_TASK_PROCESS: "the project deal's tasks"}
USERNAME = string(150, min_length=1)

# -- schemas -----------------------------------------------------------------------------

ME = api.schema("Me", obj({
    "username": string(150), "display_name": string(200), "roles": array(string(20)),
    "groups": array(string(150)), "headed_groups": array(string(150)),
}, required=("username", "display_name", "roles", "groups", "headed_groups")))

WORK_ITEM = api.schema("WorkItem", obj({
    "id": identifier(), "instance_id": identifier(),
    "name": string(300), "task_spec": string(200, description="The BPMN id of the step."),
    "stage": string(300), "lane": string(200, nullable=True),
    "status": string(20, enum=tuple(s.value for s in ItemStatus)),
    "version": integer(minimum=1, description="Send it back as expected_version when completing."),
    "priority": integer(),
    "assignee": string(150, nullable=True, description="null: in the queue of its candidates."),
    "candidate_groups": array(string(200)), "candidate_users": array(string(200)),
    "created_at": string(40, format="date-time"),
    "due_at": string(40, format="date-time", nullable=True),
    "overdue": boolean("Open and past its deadline."),
    "completed_at": string(40, format="date-time", nullable=True),
    "completed_by": string(150, nullable=True),
}, required=("id", "instance_id", "name", "task_spec", "stage", "status", "version", "assignee", "due_at",
             "overdue"), additional=True))

FORM_FIELD = api.schema("FormField", obj({
    "id": string(200), "type": string(40, description="string, long, boolean, date or enum."),
    "label": string(300), "required": boolean(), "readonly": boolean(),
    "default": {"description": "The field's default value, if any.", "nullable": True},
    "options": array(obj({"id": string(200), "label": string(300)}, additional=True)),
    "constraints": free_object("Camunda validation constraints: minlength, maxlength, min, max ..."),
}, required=("id", "type", "label", "required"), additional=True))

WORK_ITEM_DETAIL = api.schema("WorkItemDetail", {"allOf": [WORK_ITEM, obj({
    "form": array(FORM_FIELD, description="The fields of the step's form (empty once it is closed)."),
}, required=("form",), additional=True)]})

WORK_ITEM_PAGE = api.schema("WorkItemPage", obj({
    "items": array(WORK_ITEM), "limit": integer(), "offset": integer(),
    "next_offset": integer(nullable=True, description="Where the next page starts; null on the last page."),
}, required=("items", "limit", "offset", "next_offset"), additional=True))

HISTORY_EVENT = api.schema("HistoryEvent", obj({
    "id": identifier(), "type": string(40), "at": string(40, format="date-time"),
    "actor": string(150, nullable=True), "work_item_id": identifier(nullable=True),
    "task_spec": string(200, nullable=True), "detail": free_object("What happened, by event type."),
}, required=("id", "type", "at"), additional=True))

INSTANCE = api.schema("Instance", obj({
    "id": identifier(), "process_key": string(200), "process_version": integer(),
    "business_key": string(200, nullable=True),
    "status": string(20, enum=("running", "completed", "cancelled")),
    "current_stage": string(300, nullable=True), "started_by": string(150, nullable=True),
    "started_at": string(40, format="date-time"), "ended_at": string(40, format="date-time", nullable=True),
    "data": free_object("The process variables now."),
    "open_items": array(WORK_ITEM),
    "history": array(HISTORY_EVENT, description="Everything that happened, oldest first."),
}, required=("id", "process_key", "status", "data", "open_items", "history"), additional=True))

COMPLETION = api.schema("Completion", obj({
    "work_item": obj({
        "id": identifier(), "instance_id": identifier(), "name": string(300), "stage": string(300),
        "status": string(20), "version": integer(), "completed_by": string(150),
        "completed_at": string(40, format="date-time"), "submitted_data": free_object("The form's values as kept."),
    }, required=("id", "instance_id", "status", "version"), additional=True),
    "instance": obj({"id": identifier(), "status": string(20), "current_stage": string(300, nullable=True)},
                    required=("id", "status"), additional=True),
    "next_items": array(WORK_ITEM, description="The instance's open items after this step."),
}, required=("work_item", "instance", "next_items"), additional=True))

# -- payloads ----------------------------------------------------------------------------


def moment(value: datetime | None) -> str | None:
    """Moments in UTC, ISO 8601 with the offset."""
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def work_item_payload(item: readmodel.WorkItem, now: datetime) -> dict[str, Any]:
    return {
        "id": item.id, "instance_id": item.instance_id, "name": item.name, "task_spec": item.task_spec,
        "stage": item.stage, "lane": item.lane, "status": item.status, "version": item.version,
        "priority": item.priority, "assignee": item.assignee.username if item.assignee else None,
        "candidate_groups": item.candidate_groups, "candidate_users": item.candidate_users,
        "created_at": moment(item.created_at), "due_at": moment(item.due_at),
        "overdue": item.status == ItemStatus.OPEN and item.due_at is not None and item.due_at < now,
        "completed_at": moment(item.completed_at),
        "completed_by": item.completed_by.username if item.completed_by else None,
    }


def _field_payload(field: FieldSpec) -> dict[str, Any]:
    return {"id": field.id, "type": field.type, "label": field.label, "required": field.required,
            "readonly": field.readonly, "default": field.default,
            "options": [{"id": option, "label": label} for option, label in field.options],
            "constraints": dict(field.constraints)}


def _history_payload(event: readmodel.HistoryEvent) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "at": moment(event.at), "actor": event.actor,
            "work_item_id": event.work_item_id, "task_spec": event.task_spec, "detail": event.detail or {}}


def instance_payload(details: InstanceDetails, now: datetime) -> dict[str, Any]:
    instance = details.instance
    return {
        "id": instance.id, "process_key": instance.process_key, "process_version": instance.definition.version,
        "business_key": instance.business_key, "status": instance.status, "current_stage": instance.current_stage,
        "started_by": instance.started_by, "started_at": moment(instance.started_at),
        "ended_at": moment(instance.ended_at), "data": details.data,
        "open_items": [work_item_payload(item, now) for item in details.open_items],
        "history": [_history_payload(event) for event in details.history],
    }


def _completed_payload(done: CompletedItem) -> dict[str, Any]:
    return {"id": done.id, "instance_id": done.instance_id, "name": done.name, "stage": done.stage,
            "status": done.status, "version": done.version, "completed_by": done.completed_by,
            "completed_at": moment(done.completed_at), "submitted_data": done.submitted_data}


# -- who am I ------------------------------------------------------------------------------


@api.operation("GET", "/me", "getMe", tag="Account", summary="The user the token acts as", response=ME)
def me(person: Person):
    return {"username": person.username, "display_name": person.display_name, "roles": sorted(person.roles),
            "groups": list(person.groups), "headed_groups": list(person.headed_groups)}


# -- work items ----------------------------------------------------------------------------


@api.operation(
    "GET", "/work-items", "listWorkItems", tag="Work items", summary="My work items and my groups' queue",
    description="Soonest deadline first. `mine`: assigned to me; `queue`: unassigned items offered to me or "
                "my groups, which I may claim; `all`: both; `team` (managers): the open items of the people "
                "and groups I am responsible for, as on the overdue board.",
    response=WORK_ITEM_PAGE,
    query=(
        Parameter("scope", string(10, enum=SCOPES), "Whose items.", default="all"),
        Parameter("status", string(20, enum=tuple(s.value for s in ItemStatus)),
                  "Queue and team items are open by definition.", default=ItemStatus.OPEN),
        Parameter("overdue", boolean(), "Only items past (true) or not past (false) their deadline."),
        Parameter("instance_id", identifier(), "Only the items of one process instance."),
        Parameter("group", string(150, min_length=1), "Only items offered to this group."),
        Parameter("limit", integer(minimum=1, maximum=MAX_PAGE), "Items per page.", default=50),
        Parameter("offset", integer(minimum=0, maximum=MAX_OFFSET), "Items to skip.", default=0),
    ),
)
def list_work_items(person: Person, query: dict[str, Any]):
    limit, offset = query["limit"], query["offset"]
    if query["scope"] == "team" and not person.is_manager:
        raise ApiError(403, "forbidden", "scope=team lists a manager's department: this needs the role manager.")
    now = engine().clock()
    with engine().reading() as session:
        page, more = readmodel.work_item_page(
            session, person, query["scope"], status=query["status"], overdue=query["overdue"],
            instance_id=query["instance_id"], group=query["group"], now=now, limit=limit, offset=offset)
    return {"items": [work_item_payload(item, now) for item in page], "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None}


def _visible_item(person: Person, item_id: int) -> readmodel.WorkItem:
    with engine().reading() as session:
        item = readmodel.work_item(session, item_id)
        if item is None:
            raise ApiError(404, "not_found", f"There is no work item {item_id}.")
        if not may_see_item(session, person, item):
            raise ApiError(403, "forbidden", f"Work item {item_id} is neither yours, nor your groups', "
                                             "nor your team's.")
        return item


@api.operation("GET", "/work-items/<int:item_id>", "getWorkItem", tag="Work items",
               summary="One work item with the fields of its form", response=WORK_ITEM_DETAIL)
def get_work_item(person: Person, item_id: int):
    item = _visible_item(person, item_id)
    fields = engine().user_task_form(item) if item.status == ItemStatus.OPEN else []
    return {**work_item_payload(item, engine().clock()), "form": [_field_payload(field) for field in fields]}


@api.operation("POST", "/work-items/<int:item_id>/claim", "claimWorkItem", tag="Work items",
               summary="Take an item from my groups' queue", response=WORK_ITEM, conflicts=True,
               description="409 when someone else took it first or it is closed; 403 when I am not a candidate.")
def claim_work_item(person: Person, item_id: int):
    _visible_item(person, item_id)
    with engine_step("claim"):
        item = engine().claim(item_id, person.username)
    note(instance_id=item.instance_id)
    return work_item_payload(item, engine().clock())


@api.operation(
    "POST", "/work-items/<int:item_id>/complete", "completeWorkItem", tag="Work items",
    summary="Complete a step with the values of its form",
    description="`expected_version` is the item's version when it was read: if anyone claimed, reassigned or "
                "completed it since, the answer is 409 `stale_work_item` with the current version and nothing "
                "is saved. Values that do not fit the form are 422 with a message per field.",
    response=COMPLETION, conflicts=True,
    body=obj({
        "expected_version": integer(minimum=1, description="The version the values were entered against."),
        "data": free_object("The form's values: field id -> value."),
    }, required=("expected_version",)),
)
def complete_work_item(person: Person, item_id: int, body: dict[str, Any]):
    _visible_item(person, item_id)
    with engine_step("complete"):
        done = engine().complete(item_id, body.get("data") or {}, person.username,
                                 expected_version=body["expected_version"])
    note(instance_id=done.instance_id)
    details = engine().instance(done.instance_id)
    now = engine().clock()
    return {"work_item": _completed_payload(done),
            "instance": {"id": details.instance.id, "status": details.instance.status,
                         "current_stage": details.instance.current_stage},
            "next_items": [work_item_payload(item, now) for item in details.open_items]}


@api.operation(
    "POST", "/work-items/<int:item_id>/reassign", "reassignWorkItem", tag="Work items",
    summary="Hand an item of my department to someone in my team",
    description="As on the overdue board: a manager reassigns open items of the people and groups they are "
                "responsible for, to one of those people or to themselves; an admin, anything to anyone active.",
    roles=("manager",), response=WORK_ITEM, conflicts=True,
    body=obj({"to_user": USERNAME, "reason": string(500, nullable=True)}, required=("to_user",)),
)
def reassign_work_item(person: Person, item_id: int, body: dict[str, Any]):
    with engine().reading() as session:
        status = readmodel.work_item_status(session, item_id)
        if status is None:
            raise ApiError(404, "not_found", f"There is no work item {item_id}.")
        if status != ItemStatus.OPEN:
            raise ApiError(409, "work_item_closed", f"Work item {item_id} is already {status}.",
                           work_item_id=item_id, item_status=status)
        if not readmodel.in_department(session, person, item_id):
            raise ApiError(403, "forbidden", f"Work item {item_id} is not in your department.")
        targets = {user.username for user in readmodel.team_members(session, person)} | {person.username}
    if body["to_user"] not in targets:
        raise invalid({"to_user": "is not someone in your team"})
    with engine_step("reassign"):
        moved = engine().reassign(item_id, body["to_user"], person.username, (body.get("reason") or "").strip() or None)
    note(instance_id=moved.instance_id)
    return work_item_payload(moved, engine().clock())


# -- instances -----------------------------------------------------------------------------


@api.operation(
    "POST", "/instances", "startInstance", tag="Instances", summary="Start a process instance",
    description="Starts the latest deployed version of the process, e.g. from the company website's request "
                "form, and runs it to its first wait state. Deals and claims are started through their own "
                "resources, which record them.",
    roles=STAFF, response=INSTANCE, status=201,
    body=obj({
        "process_key": string(200, min_length=1, description="The BPMN process id."),
        "data": free_object("Start variables: names are identifiers, values plain JSON."),
        "business_key": string(200, nullable=True, description="Your reference, e.g. the web request's number."),
    }, required=("process_key",)),
)
def start_instance(person: Person, body: dict[str, Any]):
    key = body["process_key"]
    if key in _CRM_PROCESSES:
        raise invalid({"process_key": f"{key} is started with {_CRM_PROCESSES[key]}, which keeps its record"})
    try:
        with engine_step("start"):
            instance = engine().start(key, body.get("data") or {}, started_by=person.username,
                                      business_key=body.get("business_key"))
    except ProcessNotDeployed:
        raise invalid({"process_key": f"no process {key!r} is deployed"}) from None
    except ValueError as problem:  # start variables that are not plain JSON with identifier names
        raise invalid({"data": str(problem)}) from None
    note(instance_id=instance.id)
    response = jsonify(instance_payload(engine().instance(instance.id), engine().clock()))
    response.status_code = 201
    response.headers["Location"] = url_for("api.getInstance", instance_id=instance.id)
    return response


@api.operation("GET", "/instances/<int:instance_id>", "getInstance", tag="Instances",
               summary="A process instance with its open items, data and history", response=INSTANCE,
               description="Designers and admins see every instance; others one they started or took part in, "
                           "or in which someone they manage took part.")
def get_instance(person: Person, instance_id: int):
    with engine().reading() as session:
        instance = readmodel.instance(session, instance_id)
        if instance is None:
            raise ApiError(404, "not_found", f"There is no process instance {instance_id}.")
        if not may_see_instance(session, person, instance):
            raise ApiError(403, "forbidden", f"You took no part in instance {instance_id}.")
    return instance_payload(engine().instance(instance_id), engine().clock())

