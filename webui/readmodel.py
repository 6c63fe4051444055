"""The web UI's read model: every question the web UI asks of the engine's tables.

Views ask named questions here (``inbox_page``, ``board_items``, ``definition_version``,
...) inside a session they open with ``engine().reading()``; nothing else in ``webui``
touches the engine's models. Lists of work items are the engine's work-item queries
(``engine.runtime.queries``), in its one order. Who may see what is decided in
``webui.visibility``, from the facts asked here.

Besides reading, the only rows the web UI writes itself are the REST API's tokens (at the
end of this module); everything else changes through the engine and CRM facades.

``ItemStatus``, ``InstanceStatus``, ``EventType`` and ``Role`` are the vocabulary of the
records these questions return.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload, undefer

from engine.deadlines.calendar import WorkingCalendar
from engine.models import (
    ApiToken,
    Escalation,
    EscalationStatus,
    EventType,
    Group,
    HistoryEvent,
    InstanceStatus,
    ItemStatus,
    Membership,
    OutboxMessage,
    OutboxStatus,
    ProcessDefinition,
    ProcessInstance,
    RateLimitCounter,
    Role,
    User,
    WorkItem,
)
from engine.runtime.queries import (
    Buckets,
    Counts,
    WorkItemQuery,
    assigned_to,
    department,
    offered_to,
    page_of,
    queue_of,
)

__all__ = ["ApiToken", "EventType", "HistoryEvent", "InstanceStatus", "ItemStatus", "ProcessDefinition",
           "ProcessInstance", "Role", "User", "WorkItem"]

OPEN = ItemStatus.OPEN

# The rate limits' counters (webui/limits.py counts in them with one UPSERT each).
RATE_LIMIT_COUNTERS = RateLimitCounter.__table__


class Viewer(Protocol):
    """The signed-in person as these questions need them (``webui.access.Person``)."""

    id: int
    username: str
    groups: tuple[str, ...]
    headed_groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool: ...

    @property
    def is_manager(self) -> bool: ...

    @property
    def is_designer(self) -> bool: ...


# -- people --------------------------------------------------------------------------------------


def user_with_groups(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id, options=[joinedload(User.user_roles), selectinload(User.groups)])


def user_for_sign_in(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username)
                          .options(joinedload(User.user_roles), selectinload(User.groups)))


def headed_group_names(session: Session, user_id: int) -> list[str]:
    return list(session.scalars(select(Group.name).where(Group.head_id == user_id).order_by(Group.name)))


def user_named(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def user_exists(session: Session, username: str) -> bool:
    return session.scalar(select(User.id).where(User.username == username)) is not None


def active_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.active.is_(True)).order_by(User.display_name)))


def team_ids(session: Session, viewer: Viewer) -> set[int]:
    """Ids of the users ``viewer`` is responsible for: reports (down the whole line) and
    members of the groups they head. Not including the viewer."""
    if not viewer.is_manager:
        return set()
    rows = session.execute(select(User.id, User.manager_id)).all()
    reports: dict[int, list[int]] = {}
    for user_id, manager_id in rows:
        if manager_id is not None:
            reports.setdefault(manager_id, []).append(user_id)
    team: set[int] = set()
    frontier = [viewer.id]
    while frontier:
        boss = frontier.pop()
        for report in reports.get(boss, []):
            if report not in team:
                team.add(report)
                frontier.append(report)
    if viewer.headed_groups:
        members = session.scalars(
            select(User.id).join(User.groups).where(Group.name.in_(viewer.headed_groups))
        ).all()
        team.update(members)
    team.discard(viewer.id)
    return team


def team_members(session: Session, viewer: Viewer) -> list[User]:
    """The people ``viewer`` manages (all active users for an admin), by name."""
    query = select(User).where(User.active.is_(True)).options(selectinload(User.groups)).order_by(User.display_name)
    if not viewer.is_admin:
        query = query.where(User.id.in_(team_ids(session, viewer)))
    return list(session.scalars(query))


def reassign_targets(session: Session, viewer: Viewer) -> list[User]:
    """Who a manager may hand work to: their team and themselves, by name."""
    people = team_members(session, viewer)
    me = session.get(User, viewer.id)
    return sorted({u.id: u for u in [*people, me]}.values(), key=lambda u: u.display_name)


def people_named(session: Session, user_ids: Collection[int] | None) -> dict[int, tuple[str, str]]:
    """id -> (username, display name) of the users (everyone: None)."""
    query = select(User.id, User.username, User.display_name)
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    return {user_id: (username, name) for user_id, username, name in session.execute(query)}


def departments(session: Session) -> dict[str, str]:
    """Every group: name -> display name, by display name."""
    return dict(session.execute(select(Group.name, Group.display_name).order_by(Group.display_name)).all())


def departments_of(session: Session, head_id: int, member_ids: Collection[int]) -> dict[str, str]:
    """The groups ``head_id`` heads or one of ``member_ids`` belongs to: name -> display name."""
    memberships = select(Membership.group_id).where(Membership.user_id.in_(list(member_ids)))
    query = select(Group.name, Group.display_name).where(or_(Group.head_id == head_id, Group.id.in_(memberships)))
    return dict(session.execute(query.order_by(Group.display_name)).all())


def member_ids(session: Session, group_name: str) -> set[int]:
    return set(session.scalars(select(Membership.user_id).join(Group, Group.id == Membership.group_id)
                               .where(Group.name == group_name)))


# -- what visibility is decided from --------------------------------------------------------------


def handed_on_from(session: Session, item_ids: Collection[int], username: str) -> set[int]:
    """Those of the items that were reassigned away from ``username`` at some point."""
    ids = list(item_ids)
    reassigned = session.execute(select(HistoryEvent.work_item_id, HistoryEvent.detail).where(
        HistoryEvent.work_item_id == ids[0] if len(ids) == 1 else HistoryEvent.work_item_id.in_(ids),
        HistoryEvent.type == EventType.WORK_ITEM_REASSIGNED))
    return {item_id for item_id, detail in reassigned if detail and detail.get("from") == username}


def took_part(session: Session, instance_id: int, user_ids: Collection[int], groups: Collection[str],
              username: str) -> bool:
    """An item of the instance is or was assigned to, or completed by, one of ``user_ids``, or
    is offered to one of ``groups`` or to ``username`` by name."""
    involved = select(WorkItem.id).where(
        WorkItem.instance_id == instance_id,
        or_(
            WorkItem.assignee_id.in_(list(user_ids)),
            WorkItem.completed_by_id.in_(list(user_ids)),
            offered_to(groups, username).condition(),
        ),
    )
    return session.scalar(involved.limit(1)) is not None


# -- work items ------------------------------------------------------------------------------------


def work_item(session: Session, item_id: int, *, with_instance: bool = False) -> WorkItem | None:
    """One item with its candidates (and its instance with the definition)."""
    options = [selectinload(WorkItem.candidates)]
    if with_instance:
        options.append(joinedload(WorkItem.instance))
    return session.get(WorkItem, item_id, options=options)


def work_item_status(session: Session, item_id: int) -> str | None:
    """The item's status; None when there is no such item."""
    item = session.get(WorkItem, item_id)
    return item.status if item is not None else None


INBOX_PAGE_SIZE = 50


def inbox_queries(viewer: Viewer, search: str | None = None) -> dict[str, WorkItemQuery]:
    """The two halves of a person's inbox, disjoint by construction: the open items assigned
    to them, and the unassigned ones offered to them (by name or through a group)."""
    return {"mine": WorkItemQuery(scopes=(assigned_to(viewer.id),), search=search),
            "queue": WorkItemQuery(scopes=(queue_of(viewer.username, viewer.groups),), search=search)}


def inbox_page(session: Session, viewer: Viewer, bucket: str, search: str, now: datetime,
               calendar: WorkingCalendar, page: int = 0, page_size: int = INBOX_PAGE_SIZE):
    """The items of one bucket, soonest deadline first, and the count of every bucket:
    (items, counts, risk_until, more). The halves are queried apart and merged (see
    ``engine.runtime.queries``)."""
    buckets = Buckets(now, calendar.add_working_days(now, 1))
    halves = inbox_queries(viewer, search)
    listed = [name for name in halves if bucket in ("all", "overdue", "at_risk", name)]

    def narrowed(query: WorkItemQuery) -> WorkItemQuery:
        if bucket == "overdue":
            return query.overdue(buckets.now)
        if bucket == "at_risk":
            return query.at_risk(buckets)
        return query

    shown = page_of(session, [narrowed(halves[name]) for name in listed], limit=page_size, offset=page * page_size,
                    buckets=buckets, with_instance=True)
    per_half = dict(zip(listed, shown.counts or []))
    for name in halves:
        if name not in per_half:
            per_half[name] = halves[name].counts(session, buckets)
    total = sum(per_half.values(), Counts())
    counts = {"all": total.total, "mine": per_half["mine"].total, "queue": per_half["queue"].total,
              "overdue": total.overdue, "at_risk": total.at_risk}
    return shown.items, counts, buckets.risk_until, shown.more


def department_query(session: Session, viewer: Viewer) -> WorkItemQuery:
    """Open items of the people the manager is responsible for, and the unassigned items
    offered to the groups they head; every open item for an admin."""
    if viewer.is_admin:
        return WorkItemQuery()
    return WorkItemQuery().within(department(team_ids(session, viewer), viewer.headed_groups))


def board_items(session: Session, viewer: Viewer, risk_until: datetime) -> list[WorkItem]:
    """The department's items overdue or due before ``risk_until``, with their instances."""
    return department_query(session, viewer).due_before(risk_until).items(session, with_instance=True)


def department_items(session: Session, viewer: Viewer, *, assignee_id: int | None = None,
                     ids: Collection[int] = ()) -> list[WorkItem]:
    """The department's open items assigned to ``assignee_id``, or those of ``ids``."""
    query = department_query(session, viewer)
    query = query.within(assigned_to(assignee_id)) if assignee_id is not None else query.where(ids=tuple(ids))
    return query.items(session, with_instance=True)


def in_department(session: Session, viewer: Viewer, item_id: int) -> bool:
    return department_query(session, viewer).where(ids=(item_id,)).count(session) > 0


def open_item_count(session: Session, user_id: int) -> int:
    return WorkItemQuery().within(assigned_to(user_id)).count(session)


def workload(session: Session, user_ids: Collection[int], buckets: Buckets, done_since: datetime
             ) -> tuple[dict[int | None, Counts], dict[int, int]]:
    """Open, overdue and at-risk items per person, and how many each completed since ``done_since``."""
    if not user_ids:
        return {}, {}
    load = WorkItemQuery().within(assigned_to(*user_ids)).counts_per_assignee(session, buckets)
    done = dict(session.execute(
        select(WorkItem.completed_by_id, func.count())
        .where(WorkItem.status == ItemStatus.COMPLETED, WorkItem.completed_at >= done_since,
               WorkItem.completed_by_id.in_(list(user_ids)))
        .group_by(WorkItem.completed_by_id)
    ).all())
    return load, done


API_SCOPES = ("all", "mine", "queue", "team")


def work_item_page(session: Session, viewer: Viewer, scope: str, *, status: str | None, overdue: bool | None,
                   instance_id: int | None, group: str | None, now: datetime, limit: int, offset: int
                   ) -> tuple[list[WorkItem], bool]:
    """The REST API's list: (the page's items, whether another page follows). ``team`` is the
    overdue board's department, open items by definition."""
    if scope == "team":
        if status != OPEN:
            return [], False
        queries = [department_query(session, viewer)]
    else:
        queries = [query for name, query in inbox_queries(viewer).items() if scope in ("all", name)]
    narrowed = []
    for query in queries:
        query = query.where(status=status, instance_id=instance_id)
        if group is not None:
            query = query.within(offered_to([group]))
        if overdue is True:
            query = query.overdue(now)
        elif overdue is False:
            query = query.not_overdue(now)
        narrowed.append(query)
    page = page_of(session, narrowed, limit=limit, offset=offset)
    return page.items, page.more


def open_items_of(session: Session, instance_id: int) -> list[WorkItem]:
    """The instance's open items with their candidates."""
    return WorkItemQuery(instance_id=instance_id).items(session)


def item_names(session: Session, instance_id: int) -> dict[int, str]:
    """id -> name of every item the instance ever had."""
    return dict(session.execute(select(WorkItem.id, WorkItem.name).where(WorkItem.instance_id == instance_id)).all())


# -- instances and definitions ----------------------------------------------------------------------


def instance(session: Session, instance_id: int) -> ProcessInstance | None:
    return session.get(ProcessInstance, instance_id)


def definition_with_sources(session: Session, definition_id: int) -> ProcessDefinition | None:
    return session.scalar(select(ProcessDefinition).where(ProcessDefinition.id == definition_id)
                          .options(undefer(ProcessDefinition.sources)))


def definition_version(session: Session, key: str, version: int) -> ProcessDefinition | None:
    return session.scalar(select(ProcessDefinition)
                          .where(ProcessDefinition.key == key, ProcessDefinition.version == version)
                          .options(undefer(ProcessDefinition.sources)))


def latest_definitions(session: Session) -> dict[str, ProcessDefinition]:
    """The latest version of every process, with its sources, by key."""
    return {definition.key: definition for definition in session.scalars(
        select(ProcessDefinition).options(undefer(ProcessDefinition.sources))
        .order_by(ProcessDefinition.key, ProcessDefinition.version))}


def instance_counts(session: Session) -> dict[int, dict[str, int]]:
    """definition id -> instance status -> how many."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = session.execute(
        select(ProcessInstance.definition_id, ProcessInstance.status, func.count())
        .group_by(ProcessInstance.definition_id, ProcessInstance.status)
    ).all()
    for definition_id, status, count in rows:
        counts[definition_id][status] = count
    return counts


def recent_instances(session: Session, definition_id: int, limit: int) -> list[ProcessInstance]:
    return list(session.scalars(select(ProcessInstance).where(ProcessInstance.definition_id == definition_id)
                                .order_by(ProcessInstance.id.desc()).limit(limit)))


# -- the installation, for /metrics ------------------------------------------------------------------

_OPEN_OUTBOX_STATES = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.FAILED,
                       OutboxStatus.UNCERTAIN)


@dataclass(frozen=True)
class InstallationState:
    open_by_stage: list[tuple[str, str, int, int]]  # (process, stage, open items, of them overdue)
    escalations_fired: dict[str, int]  # level -> rungs done
    outbox: list[tuple[str, str, int]]  # (channel, status, messages not yet sent)
    oldest_due_timer: datetime | None
    oldest_due_rung: datetime | None


def installation_state(session: Session, now: datetime) -> InstallationState:
    """A handful of aggregate queries on indexed columns."""
    by_stage = session.execute(
        select(ProcessInstance.process_key, WorkItem.stage, func.count(),
               func.coalesce(func.sum(case((WorkItem.due_at < now, 1), else_=0)), 0))
        .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id)
        .where(WorkItem.status == OPEN)
        .group_by(ProcessInstance.process_key, WorkItem.stage)
    ).all()
    fired = dict(session.execute(
        select(Escalation.level, func.count()).where(Escalation.status == EscalationStatus.DONE)
        .group_by(Escalation.level)).all())
    outbox = session.execute(
        select(OutboxMessage.channel, OutboxMessage.status, func.count())
        .where(OutboxMessage.status.in_(_OPEN_OUTBOX_STATES))
        .group_by(OutboxMessage.channel, OutboxMessage.status)).all()
    oldest_timer = session.scalar(select(func.min(ProcessInstance.next_wakeup_at)).where(
        ProcessInstance.status == InstanceStatus.RUNNING, ProcessInstance.next_wakeup_at <= now))
    oldest_rung = session.scalar(select(func.min(Escalation.due_at)).where(
        Escalation.status == EscalationStatus.PENDING, Escalation.due_at <= now))
    return InstallationState([tuple(row) for row in by_stage], fired, [tuple(row) for row in outbox],
                             oldest_timer, oldest_rung)


# -- the REST API's tokens (written here: no facade keeps them) -------------------------------------


def add_token(session: Session, user_id: int, name: str, token_hash: str, prefix: str, created_at: datetime,
              expires_at: datetime | None) -> ApiToken:
    token = ApiToken(user_id=user_id, name=name, token_hash=token_hash, prefix=prefix, created_at=created_at,
                     expires_at=expires_at)
    session.add(token)
    session.flush()
    session.refresh(token, ["user"])
    return token


def tokens_of(session: Session, user_id: int | None, include_revoked: bool) -> list[ApiToken]:
    """Tokens with their users, newest first: one user's, or everyone's (None)."""
    query = select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def token_with_user(session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id, options=[selectinload(ApiToken.user)])


def valid_token(session: Session, token_hash: str, now: datetime):
    """(id, user_id, last_used_at) of the token with that hash, if it is neither revoked nor
    expired and its user is active."""
    return session.execute(
        select(ApiToken.id, ApiToken.user_id, ApiToken.last_used_at)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None),
               or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now), User.active.is_(True))
    ).first()


def mark_token_used(session: Session, token_id: int, now: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
