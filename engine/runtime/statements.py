"""The SQL of an engine step, built once.

Building an SQLAlchemy statement and its cache key costs more than SQLite takes to run
it, and a step runs a dozen: so a step reads and writes plain rows through these
prebuilt statements, and the ORM serves the rest of the API.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import joinedload

from engine.models import (
    Group,
    HistoryEvent,
    ItemStatus,
    Membership,
    ProcessDefinition,
    ProcessInstance,
    User,
    WorkItem,
    WorkItemCandidate,
)

_USERS, _GROUPS, _MEMBERSHIPS = User.__table__, Group.__table__, Membership.__table__
_ITEMS, _CANDIDATES, _INSTANCES = WorkItem.__table__, WorkItemCandidate.__table__, ProcessInstance.__table__
_INSTANCE_COLUMNS = (_INSTANCES.c.id, _INSTANCES.c.version, _INSTANCES.c.definition_id, _INSTANCES.c.process_key,
                     _INSTANCES.c.status, _INSTANCES.c.current_stage, _INSTANCES.c.ended_at, _INSTANCES.c.state)
LOCK_INSTANCE = select(*_INSTANCE_COLUMNS).where(_INSTANCES.c.id == bindparam("instance_id")).with_for_update()
LOCK_INSTANCE_OF_ITEM = (
    select(*_INSTANCE_COLUMNS).join(_ITEMS, _ITEMS.c.instance_id == _INSTANCES.c.id)
    .where(_ITEMS.c.id == bindparam("item_id")).with_for_update(of=_INSTANCES)
)
LOCK_ITEM = select(
    _ITEMS.c.id, _ITEMS.c.instance_id, _ITEMS.c.task_id, _ITEMS.c.task_spec, _ITEMS.c.name, _ITEMS.c.stage,
    _ITEMS.c.status, _ITEMS.c.version, _ITEMS.c.assignee_id, _ITEMS.c.completed_by_id,
).where(_ITEMS.c.id == bindparam("item_id")).with_for_update()
OPEN_ITEMS_OF_TASKS = select(_ITEMS.c.id, _ITEMS.c.version, _ITEMS.c.task_spec).where(
    _ITEMS.c.instance_id == bindparam("instance_id"), _ITEMS.c.status == ItemStatus.OPEN,
    _ITEMS.c.task_id.in_(bindparam("task_ids", expanding=True)),
)
USER_BY_NAME = select(_USERS.c.id, _USERS.c.username).where(_USERS.c.username == bindparam("username"))
USERNAME_BY_ID = select(_USERS.c.username).where(_USERS.c.id == bindparam("user_id"))
IS_CANDIDATE = select(_CANDIDATES.c.work_item_id).where(
    _CANDIDATES.c.work_item_id == bindparam("item_id"),
    or_(
        and_(_CANDIDATES.c.kind == "user", _CANDIDATES.c.name == bindparam("username")),
        and_(_CANDIDATES.c.kind == "group", _CANDIDATES.c.name.in_(
            select(_GROUPS.c.name).join(_MEMBERSHIPS, _MEMBERSHIPS.c.group_id == _GROUPS.c.id)
            .where(_MEMBERSHIPS.c.user_id == bindparam("user_id"))
        )),
    ),
).limit(1)
PROCESS_KEY_OF_INSTANCE = select(_INSTANCES.c.process_key).where(_INSTANCES.c.id == bindparam("instance_id"))
DEFINITION_SOURCES = select(ProcessDefinition.__table__.c.sources).where(
    ProcessDefinition.__table__.c.id == bindparam("definition_id"))
# Claim and reassign lock and change the ORM object; the rest of a step uses rows.
ITEM_FOR_UPDATE = (
    select(WorkItem).where(WorkItem.id == bindparam("item_id")).with_for_update(of=WorkItem)
    .options(joinedload(WorkItem.candidates))
)
INSERT_INSTANCE = _INSTANCES.insert()
SET_BUSINESS_KEY = (_INSTANCES.update().where(_INSTANCES.c.id == bindparam("instance_id"))
                    .values(business_key=bindparam("business_key")))
INSERT_ITEM = _ITEMS.insert()
INSERT_CANDIDATES = _CANDIDATES.insert()
INSERT_HISTORY = HistoryEvent.__table__.insert()


def versioned_update(table, *columns: str):
    """UPDATE table SET columns..., version = version + 1 WHERE id = :b_id AND version = :b_version"""
    return (
        table.update()
        .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
        .values(version=table.c.version + 1, **{name: bindparam(f"b_{name}") for name in columns})
    )


COMPLETE_ITEM = versioned_update(_ITEMS, "status", "completed_at", "assignee_id", "completed_by_id",
                                   "submitted_data")
CANCEL_ITEM = versioned_update(_ITEMS, "status", "completed_at")
SAVE_INSTANCE = versioned_update(_INSTANCES, "state", "status", "ended_at", "current_stage", "next_wakeup_at",
                                   "updated_at")
