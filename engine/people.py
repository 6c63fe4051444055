"""Users, groups, and who is responsible for whom."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from engine.errors import NotFound, UnknownUser
from engine.models import Group, Role, User, UserRole, WorkItem
from engine.texts import _


def get_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise UnknownUser(username)
    return user


# With the user's roles in the same query: whoever looks a user up by name mostly goes on
# to check what they may do.
_USER_BY_NAME = select(User).where(User.username == bindparam("username")).options(joinedload(User.user_roles))


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(_USER_BY_NAME, {"username": username})


def get_group(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(_("There is no group called '%(group)s'.", group=name), code="group_not_found")
    return group


def add_user(
    session: Session,
    username: str,
    display_name: str | None,
    *,
    now: datetime,
    email: str | None = None,
    roles: Sequence[str] = (Role.EMPLOYEE,),
    groups: Sequence[str] = (),
    manager: str | None = None,
    password_hash: str | None = None,
    locale: str = "ru",
) -> User:
    if not username or not username.strip() or username != username.strip():
        raise ValueError(f"{username!r} is not a valid user name")
    if find_user(session, username) is not None:
        raise ValueError(f"A user called {username!r} already exists.")
    unknown_roles = set(roles) - {r.value for r in Role}
    if unknown_roles:
        raise ValueError(f"Unknown roles {sorted(unknown_roles)}; roles are {', '.join(r.value for r in Role)}.")
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        user_roles=[UserRole(role=Role(role)) for role in dict.fromkeys(roles)],
        password_hash=password_hash,
        locale=locale,
        manager=get_user(session, manager) if manager else None,
        groups=[get_group(session, name) for name in groups],
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def add_group(session: Session, name: str, display_name: str | None, *, head: str | None = None,
              members: Sequence[str] = ()) -> Group:
    if session.scalar(select(Group).where(Group.name == name)) is not None:
        raise ValueError(f"A group called {name!r} already exists.")
    group = Group(
        name=name,
        display_name=display_name or name,
        head=get_user(session, head) if head else None,
        members=[get_user(session, member) for member in members],
    )
    session.add(group)
    session.flush()
    return group


def is_candidate(user: User, item: WorkItem) -> bool:
    if user.username in item.candidate_users:
        return True
    return bool({g.name for g in user.groups} & set(item.candidate_groups))


def responsible_for(session: Session, actor: User, subject: User) -> bool:
    """The actor manages the subject, directly or up the line, or heads one of the subject's groups."""
    seen = set()
    boss = subject.manager
    while boss is not None and boss.id not in seen:
        if boss.id == actor.id:
            return True
        seen.add(boss.id)
        boss = boss.manager
    return any(group.head_id == actor.id for group in subject.groups)


def may_reassign(session: Session, actor: User, item: WorkItem) -> bool:
    if Role.ADMIN in actor.role_set:
        return True
    if item.assignee_id == actor.id:
        return True
    if item.assignee is not None and responsible_for(session, actor, item.assignee):
        return True
    heads = session.scalars(select(Group.head_id).where(Group.name.in_(item.candidate_groups))).all()
    return actor.id in heads
