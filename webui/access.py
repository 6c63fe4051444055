"""Who the signed-in person is and what they may see.

Rules: an employee sees the items assigned to them and the queues of their groups; a
manager also sees the work of the people they are responsible for (reporting to them,
directly or up the line, or members of a group they head) and the queues of the groups
they head; designers see process definitions and instances; admins see everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import wraps

from flask import abort, current_app
from flask_login import UserMixin, current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from engine.models import EventType, Group, HistoryEvent, ProcessInstance, Role, User, WorkItem, WorkItemCandidate
from engine.runtime import Engine
from processes.system import System


def system() -> System:
    """crmflow as this app runs it (``processes.system``)."""
    return current_app.extensions["crmflow"]


def engine() -> Engine:
    return system().engine


@dataclass(frozen=True)
class Person(UserMixin):
    """The signed-in user as one request sees them (a plain value: no open session needed)."""

    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    locale: str
    groups: tuple[str, ...]
    headed_groups: tuple[str, ...]
    active: bool

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:
        return self.active

    def has_role(self, *roles: str) -> bool:
        return Role.ADMIN.value in self.roles or bool(self.roles & set(roles))

    @property
    def is_manager(self) -> bool:
        return self.has_role(Role.MANAGER.value)

    @property
    def is_designer(self) -> bool:
        return self.has_role(Role.DESIGNER.value)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles


def load_person(session: Session, user: User) -> Person:
    headed = session.scalars(select(Group.name).where(Group.head_id == user.id).order_by(Group.name)).all()
    return Person(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=frozenset(user.role_set),
        locale=user.locale or "ru",
        groups=tuple(sorted(g.name for g in user.groups)),
        headed_groups=tuple(headed),
        active=user.active,
    )


def person_by_id(user_id: int) -> Person | None:
    with engine().reading() as session:
        user = session.get(User, user_id, options=[joinedload(User.user_roles), selectinload(User.groups)])
        return load_person(session, user) if user is not None else None


def role_required(*roles: str):
    """The view needs a signed-in user with one of ``roles`` (admins pass every check)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if roles and not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def team_ids(session: Session, person: Person) -> set[int]:
    """Ids of the users ``person`` is responsible for: reports (down the whole line) and
    members of the groups they head. Not including the person."""
    if not person.is_manager:
        return set()
    rows = session.execute(select(User.id, User.manager_id)).all()
    reports: dict[int, list[int]] = {}
    for user_id, manager_id in rows:
        if manager_id is not None:
            reports.setdefault(manager_id, []).append(user_id)
    team: set[int] = set()
    frontier = [person.id]
    while frontier:
        boss = frontier.pop()
        for report in reports.get(boss, []):
            if report not in team:
                team.add(report)
                frontier.append(report)
    if person.headed_groups:
        members = session.scalars(
            select(User.id).join(User.groups).where(Group.name.in_(person.headed_groups))
        ).all()
        team.update(members)
    team.discard(person.id)
    return team


def team_members(session: Session, person: Person) -> list[User]:
    """The people ``person`` manages (all active users for an admin), by name."""
    query = select(User).where(User.active.is_(True)).options(selectinload(User.groups)).order_by(User.display_name)
    if not person.is_admin:
        query = query.where(User.id.in_(team_ids(session, person)))
    return list(session.scalars(query))


def candidate_condition(group_names: Iterable[str], username: str | None = None):
    """SQL condition on candidate rows: offered to one of the groups (or to the user by name)."""
    condition = (WorkItemCandidate.kind == "group") & WorkItemCandidate.name.in_(list(group_names))
    if username is not None:
        condition = or_(condition, (WorkItemCandidate.kind == "user") & (WorkItemCandidate.name == username))
    return condition


def candidate_filter(group_names: Iterable[str], username: str | None = None):
    """SQL condition: the work item is offered to one of the groups (or to the user by name)."""
    return WorkItem.id.in_(select(WorkItemCandidate.work_item_id).where(candidate_condition(group_names, username)))


def may_see_item(session: Session, person: Person, item: WorkItem) -> bool:
    if person.is_admin:
        return True
    if person.id in (item.assignee_id, item.completed_by_id):
        return True
    offered_to = set(item.candidate_groups)
    if item.assignee_id is None and (person.username in item.candidate_users or offered_to & set(person.groups)):
        return True
    if offered_to & set(person.headed_groups):
        return True
    team = team_ids(session, person)
    if team & {item.assignee_id, item.completed_by_id} - {None}:
        return True
    return _was_assignee(session, person, item)


def _was_assignee(session: Session, person: Person, item: WorkItem) -> bool:
    """Someone whose item was handed on still sees it (read-only), so that a page they
    had open explains what happened instead of refusing them."""
    handed_on = session.scalars(select(HistoryEvent.detail).where(
        HistoryEvent.work_item_id == item.id, HistoryEvent.type == EventType.WORK_ITEM_REASSIGNED.value))
    return any(detail and detail.get("from") == person.username for detail in handed_on)


def may_see_instance(session: Session, person: Person, instance: ProcessInstance) -> bool:
    """Designers and admins see every instance; others one they started or took part in,
    or in which someone they manage took part."""
    if person.is_admin or person.is_designer:
        return True
    if instance.started_by == person.username:
        return True
    people = {person.id} | team_ids(session, person)
    groups = set(person.groups) | set(person.headed_groups)
    involved = select(WorkItem.id).where(
        WorkItem.instance_id == instance.id,
        or_(
            WorkItem.assignee_id.in_(people),
            WorkItem.completed_by_id.in_(people),
            candidate_filter(groups, person.username),
        ),
    )
    return session.scalar(involved.limit(1)) is not None
