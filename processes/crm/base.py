"""What every part of the CRM facade stands on: the engine, its clock, and the records'
shared look-ups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine import people
from engine.models import Role, User
from engine.runtime import Engine
from processes.errors import record_not_found


class CrmBase:
    """The engine the CRM works through; each part of the facade (``processes.crm.Crm``)
    extends this."""

    engine: Engine

    @property
    def now(self) -> datetime:
        return self.engine.clock()


def get_record(session: Session, model, id_: int, what: str):
    """The ``model`` row ``id_``; NotFound names it as ``what`` (customer, deal or claim)
    when there is none."""
    row = session.get(model, id_)
    if row is None:
        raise record_not_found(what, id_)
    return row


def manages(session: Session, actor: User, subject: User) -> bool:
    """An admin, or someone responsible for ``subject`` (up the line, or heading their group)."""
    return Role.ADMIN in actor.role_set or people.responsible_for(session, actor, subject)
