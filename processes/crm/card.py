"""The customer card (D4): every process of a customer with its stage, plan deviation and
next step, the timeline and the curator changes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.models import ItemStatus, WorkItem
from engine.texts import Listing, Text
from processes.crm.base import CrmBase
from processes.errors import record_not_found
from processes.models import Claim, ClaimStatus, CuratorChange, Customer, Deal, DealStatus, DealTask, Interaction
from processes.stages import BY_CODE
from processes.texts import _, ngettext

# The statuses of deals and claims, as the card's one-line description says them.
STATUS_TEXTS = {
    DealStatus.IN_PROGRESS: _("in progress"),
    DealStatus.WON: _("won"),
    DealStatus.LOST: _("lost"),
    ClaimStatus.TRIAGE: _("triage"),
    ClaimStatus.INVESTIGATION: _("investigation"),
    ClaimStatus.RESOLUTION: _("resolution"),
    ClaimStatus.INFORMING: _("informing the customer"),
    ClaimStatus.CLOSED: _("closed"),
}


@dataclass(frozen=True)
class CardProcess:
    """One business process on the customer card (D4)."""

    kind: str  # typical, manual, project, claim
    id: int
    number: str
    title: str
    status: str
    stage: str | None  # label of the current stage
    responsible: str | None
    planned_end: date | None  # when the current stage should be done
    deviation_days: int | None  # days behind the plan (negative: ahead)
    next_step: str | None
    next_due: datetime | None
    days_left: int | None  # until the next step's deadline (negative: overdue)

    @property
    def describe(self) -> Listing:
        """The process in one line: number, title, status, stage, lag and the next step's deadline."""
        parts: list = [f"{self.number} {self.title}", STATUS_TEXTS.get(self.status, self.status)]
        if self.stage:
            parts.append(_("stage %(stage)s", stage=self.stage))
        if self.deviation_days and self.deviation_days > 0:
            parts.append(ngettext("%(num)d day behind plan", "%(num)d days behind plan", self.deviation_days))
        if self.next_step and self.days_left is not None:
            parts.append(_("%(step)s: %(deadline)s", step=self.next_step, deadline=days_text(self.days_left)))
        return Listing(parts)


@dataclass(frozen=True)
class CustomerCard:
    customer: Customer
    processes: list[CardProcess]
    timeline: list[Interaction]
    curator_changes: list[CuratorChange]

    @property
    def summary(self) -> Listing:
        """The customer's deals and claims counted in a sentence, with how far behind plan."""
        running = [p for p in self.processes if p.kind != "claim" and p.status == DealStatus.IN_PROGRESS]
        behind = [p for p in running if p.deviation_days and p.deviation_days > 0]
        won = sum(1 for p in self.processes if p.status == DealStatus.WON)
        lost = sum(1 for p in self.processes if p.status == DealStatus.LOST)
        open_claims = sum(1 for p in self.processes if p.kind == "claim" and p.status != ClaimStatus.CLOSED)
        counts = Listing([ngettext("%(num)d running deal", "%(num)d running deals", len(running)),
                          ngettext("%(num)d won", "%(num)d won", won),
                          ngettext("%(num)d lost", "%(num)d lost", lost),
                          ngettext("%(num)d open claim", "%(num)d open claims", open_claims)])
        if not behind:
            return counts
        lag = ngettext("%(num)d of them is behind plan, by up to %(days)s",
                       "%(num)d of them are behind plan, by up to %(days)s", len(behind),
                       days=ngettext("%(num)d day", "%(num)d days", max(p.deviation_days for p in behind)))
        return Listing([counts, lag], "; ")


def days_text(days_left: int) -> Text:
    """How long until a deadline, or how long past it."""
    if days_left < 0:
        return ngettext("%(num)d day overdue", "%(num)d days overdue", -days_left)
    return ngettext("%(num)d day left", "%(num)d days left", days_left)


class CustomerCards(CrmBase):
    """The customer card (D4)."""

    def customer_card(self, customer_id: int) -> CustomerCard:
        now = self.now
        today = now.date()
        with self.engine.reading() as session:
            customer = session.get(Customer, customer_id, options=[selectinload(Customer.contacts)])
            if customer is None:
                raise record_not_found("customer", customer_id)
            deals = list(session.scalars(select(Deal).where(Deal.customer_id == customer_id)
                                         .options(selectinload(Deal.plan)).order_by(Deal.id)))
            claims = list(session.scalars(select(Claim).where(Claim.customer_id == customer_id).order_by(Claim.id)))
            instance_ids = [d.instance_id for d in deals if d.instance_id] + [c.instance_id for c in claims]
            task_instances: dict[int, list[int]] = {}
            for task in session.scalars(select(DealTask).where(DealTask.deal_id.in_([d.id for d in deals]))):
                task_instances.setdefault(task.deal_id, []).append(task.instance_id)
                instance_ids.append(task.instance_id)
            open_items: dict[int, list[WorkItem]] = {}
            for item in session.scalars(select(WorkItem).where(WorkItem.instance_id.in_(instance_ids),
                                                                WorkItem.status == ItemStatus.OPEN)
                                        .order_by(WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.id)):
                open_items.setdefault(item.instance_id, []).append(item)
            processes = []
            for deal in deals:
                items = [i for iid in ([deal.instance_id] if deal.instance_id else task_instances.get(deal.id, []))
                         for i in open_items.get(iid, [])]
                items.sort(key=lambda i: (i.due_at is None, i.due_at or now))
                planned = {p.stage: p.planned_end for p in deal.plan}.get(deal.current_stage)
                deviation = (today - planned).days if planned and deal.status == DealStatus.IN_PROGRESS else None
                processes.append(card_process(deal.kind, deal.id, deal.number, deal.title, deal.status,
                                               BY_CODE[deal.current_stage].label if deal.current_stage else None,
                                               deal.curator.username, planned, deviation, items, now))
            for claim in claims:
                items = open_items.get(claim.instance_id, [])
                deviation = None
                if claim.status != ClaimStatus.CLOSED:
                    deviation = (today - claim.response_due_at.date()).days
                processes.append(card_process("claim", claim.id, claim.number, claim.essence[:80], claim.status,
                                               claim.status.replace("_", " "), claim.responsible_officer,
                                               claim.response_due_at.date(), deviation, items, now))
            timeline = list(session.scalars(select(Interaction).where(Interaction.customer_id == customer_id)
                                            .order_by(Interaction.at.desc(), Interaction.id.desc())))
            changes = list(session.scalars(select(CuratorChange).where(CuratorChange.customer_id == customer_id)
                                           .order_by(CuratorChange.id)))
            return CustomerCard(customer, processes, timeline, changes)


def card_process(kind, id_, number, title, status, stage, responsible, planned_end, deviation, items, now):
    first = items[0] if items else None
    days_left = None
    if first is not None and first.due_at is not None:
        days_left = math.floor((first.due_at - now).total_seconds() / 86400)
    return CardProcess(kind, id_, number, title, status, stage, responsible, planned_end, deviation,
                       first.name if first else None, first.due_at if first else None, days_left)
