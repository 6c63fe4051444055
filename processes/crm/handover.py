"""Handing customers over to another curator (E3), with their running deals and open work."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import people
from engine.errors import NotAuthorized, NotFound
from engine.models import ItemStatus, Role, User, WorkItem
from processes.crm.base import CrmBase
from processes.models import CuratorChange, Customer, Deal, DealStatus, DealTask
from processes.texts import _, ngettext


class Handovers(CrmBase):
    """Handing customers to another curator (E3)."""

    def change_curator(self, customer_ids: Iterable[int], to_user: str, by: str, reason: str | None = None) -> list[CuratorChange]:
        """Hand customers to another curator, in one transaction: the customers, their running
        deals, and the open work items of those deals held by the old curator move together,
        and every moved item is recorded in its instance's history."""
        ids = list(dict.fromkeys(customer_ids))
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            target = people.get_user(session, to_user)
            if not target.active:
                raise NotAuthorized(_("%(user)s is no longer active and cannot take customers.",
                                      user=target.username), code="inactive_user")
            customers = list(session.scalars(select(Customer).where(Customer.id.in_(ids))
                                             .order_by(Customer.id).with_for_update(of=Customer)))
            missing = set(ids) - {c.id for c in customers}
            if missing:
                raise NotFound(ngettext("There is no customer %(customers)s.", "There are no customers %(customers)s.",
                                        len(missing), customers=sorted(missing)), code="customer_not_found")
            return [self.hand_over(session, customer, actor, target, reason) for customer in customers]

    def hand_over_all(self, from_user: str, to_user: str, by: str, reason: str | None = None) -> list[CuratorChange]:
        """All customers of a leaving employee to another, in one operation."""
        with self.engine.reading() as session:
            leaving = people.get_user(session, from_user)
            ids = list(session.scalars(select(Customer.id).where(Customer.curator_id == leaving.id)))
        return self.change_curator(ids, to_user, by, reason)

    def hand_over(self, session: Session, customer: Customer, actor: User, target: User,
                   reason: str | None) -> CuratorChange:
        previous = customer.curator
        if not may_change_curator(session, actor, previous):
            raise NotAuthorized(_("%(user)s may not hand over customer %(customer_id)s (%(customer)s): that takes "
                                  "its curator, their manager, a head of their department or an admin.",
                                  user=actor.username, customer_id=customer.id, customer=customer.name),
                                code="may_not_hand_over")
        now = self.now
        customer.curator = target
        deals = list(session.scalars(select(Deal).where(Deal.customer_id == customer.id,
                                                          Deal.status == DealStatus.IN_PROGRESS)))
        instance_ids = [d.instance_id for d in deals if d.instance_id]
        instance_ids += list(session.scalars(select(DealTask.instance_id).where(
            DealTask.deal_id.in_([d.id for d in deals]), DealTask.done_at.is_(None))))
        for deal in deals:
            if previous is None or deal.curator_id == previous.id:
                deal.curator_id = target.id
        moved = []
        if previous is not None and instance_ids:
            items = session.scalars(select(WorkItem).where(
                WorkItem.instance_id.in_(instance_ids), WorkItem.status == ItemStatus.OPEN,
                WorkItem.assignee_id == previous.id).order_by(WorkItem.id).with_for_update(of=WorkItem))
            why = f"curator of {customer.name} changed" + (f": {reason}" if reason else "")
            for item in items:
                self.engine.reassign_in(session, item, target.username, actor=actor.username, reason=why)
                moved.append(item.id)
        if previous is not None and instance_ids:
            session.execute(update(DealTask).where(DealTask.instance_id.in_(instance_ids),
                                                   DealTask.owner == previous.username)
                            .values(owner=target.username).execution_options(synchronize_session=False))
        change = CuratorChange(customer_id=customer.id, from_user=previous.username if previous else None,
                               to_user=target.username, changed_by=actor.username, changed_at=now, reason=reason,
                               moved_work_items=moved)
        session.add(change)
        return change


def may_change_curator(session: Session, actor: User, curator: User | None) -> bool:
    if Role.ADMIN in actor.role_set:
        return True
    if curator is None:
        return Role.MANAGER in actor.role_set
    return actor.id == curator.id or people.responsible_for(session, actor, curator)
