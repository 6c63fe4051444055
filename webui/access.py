"""Who the signed-in person is, what role a view needs, and the app's facades.

Rules: an employee sees the items assigned to them and the queues of their groups; a
manager also sees the work of the people they are responsible for (reporting to them,
directly or up the line, or members of a group they head) and the queues of the groups
they head; designers see process definitions and instances; admins see everything. The
rules for one item or instance are ``webui.visibility``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import abort, current_app
from flask_login import UserMixin, current_user
from sqlalchemy.orm import Session

from engine.runtime import Engine
from processes.crm import Crm
from processes.system import System
from webui import readmodel
from webui.readmodel import Role


def system() -> System:
    """crmflow as this app runs it (``processes.system``)."""
    return current_app.extensions["crmflow"]


def engine() -> Engine:
    return system().engine


def crm() -> Crm:
    return system().crm


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
        return Role.ADMIN in self.roles or bool(self.roles & set(roles))

    @property
    def is_manager(self) -> bool:
        return self.has_role(Role.MANAGER)

    @property
    def is_designer(self) -> bool:
        return self.has_role(Role.DESIGNER)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


def load_person(session: Session, user: readmodel.User) -> Person:
    return Person(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=frozenset(user.role_set),
        locale=user.locale or "ru",
        groups=tuple(sorted(g.name for g in user.groups)),
        headed_groups=tuple(readmodel.headed_group_names(session, user.id)),
        active=user.active,
    )


def person_by_id(user_id: int) -> Person | None:
    with engine().reading() as session:
        user = readmodel.user_with_groups(session, user_id)
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
