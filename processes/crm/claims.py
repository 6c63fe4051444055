"""Claims (C1-C4): registration from any partner or self-service, the investigation plan,
the files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from engine import people
from engine.errors import FieldError, NotFound
from engine.models import EventType, Group, HistoryEvent, WorkItem
from processes.crm.base import CrmBase, get_record
from processes.crm.definitions import CLAIM_PROCESS, CLAIM_REASONS, CLAIM_RESPONSE_WORKING_DAYS, MAX_ATTACHMENT_BYTES
from processes.errors import REQUIRED, InvalidData, no_such_user, one_of, record_not_found
from processes.models import Claim, ClaimActivity, ClaimAttachment, ClaimStatus, Customer, Deal
from processes.texts import _


@dataclass
class ClaimDraft:
    customer_id: int
    complainant: str
    essence: str
    reason: str
    guilty_department: str | None = None
    guilty_employee: str | None = None
    deal_id: int | None = None
    # (file name, content type, content)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedActivity:
    owner: str
    due_on: date
    description: str


class Claims(CrmBase):
    """Claims (C1-C4): registering them, their files, planning the investigation."""

    def register_claim(self, draft: ClaimDraft, by: str | None) -> Claim:
        """Register a claim from any partner and start its investigation. ``by`` is None for
        a claim the customer registers themselves (self-service)."""
        errors: dict[str, FieldError] = {}
        if not (draft.complainant or "").strip():
            errors["complainant"] = REQUIRED
        if not (draft.essence or "").strip():
            errors["essence"] = REQUIRED
        if draft.reason not in CLAIM_REASONS:
            errors["reason"] = one_of(CLAIM_REASONS)
        for index, (name, _content_type, content) in enumerate(draft.attachments):
            if not name or "/" in name or "\\" in name:
                errors[f"attachments[{index + 1}]"] = FieldError("not_a_file_name", _(
                    "%(name)s is not a plain file name", name=repr(name)))
            elif len(content) > MAX_ATTACHMENT_BYTES:
                errors[f"attachments[{index + 1}]"] = FieldError("too_large", _(
                    "%(name)s is larger than %(megabytes)s MB", name=name, megabytes=MAX_ATTACHMENT_BYTES // 2**20))
        with self.engine.reading() as session:
            customer = get_record(session, Customer, draft.customer_id, "customer")
            if by is not None:
                people.get_user(session, by)
            if draft.guilty_employee and people.find_user(session, draft.guilty_employee) is None:
                errors["guilty_employee"] = no_such_user(draft.guilty_employee)
            if draft.guilty_department:
                if session.scalar(select(Group).where(Group.name == draft.guilty_department)) is None:
                    errors["guilty_department"] = FieldError("unknown_department", _(
                        "there is no department %(department)s", department=repr(draft.guilty_department)))
            if draft.deal_id is not None:
                deal = session.get(Deal, draft.deal_id)
                if deal is None or deal.customer_id != customer.id:
                    errors["deal_id"] = FieldError("other_customer", _("deal %(deal_id)s is not a deal of this "
                                                                       "customer", deal_id=draft.deal_id))
        if errors:
            raise InvalidData("claim", errors)
        now = self.now
        due = self.engine.working_calendar.add_working_days(now, CLAIM_RESPONSE_WORKING_DAYS)
        created: list[Claim] = []

        def create(session: Session, instance_id: int) -> str:
            guilty = people.find_user(session, draft.guilty_employee) if draft.guilty_employee else None
            claim = Claim(
                customer_id=customer.id, complainant=draft.complainant.strip(), essence=draft.essence.strip(),
                reason=draft.reason, guilty_department=draft.guilty_department, guilty_employee=guilty,
                deal_id=draft.deal_id, status=ClaimStatus.TRIAGE, registered_at=now, registered_by=by,
                response_due_at=due, instance_id=instance_id,
                attachments=[ClaimAttachment(filename=name, content_type=content_type or "application/octet-stream",
                                             size=len(content), content=content)
                             for name, content_type, content in draft.attachments],
            )
            session.add(claim)
            session.flush()
            claim.number = f"CL-{claim.id:06d}"
            created.append(claim)
            return claim.number

        data = {"claim_customer": customer.name, "claim_reason": draft.reason, "claim_due": due.isoformat(),
                "partner_role": customer.partner_role}
        self.engine.start(CLAIM_PROCESS, data, started_by=by, within=create)
        return self.claim(created[-1].id)

    def claim(self, claim_id: int) -> Claim:
        with self.engine.reading() as session:
            claim = session.get(Claim, claim_id, options=[selectinload(Claim.activities),
                                                         selectinload(Claim.attachments)])
            if claim is None:
                raise record_not_found("claim", claim_id)
            claim.customer
            return claim

    def claim_attachment(self, claim_id: int, attachment_id: int) -> ClaimAttachment:
        """One file of a claim, with its content."""
        with self.engine.reading() as session:
            attachment = session.scalar(select(ClaimAttachment).where(ClaimAttachment.id == attachment_id,
                                                                      ClaimAttachment.claim_id == claim_id)
                                        .options(undefer(ClaimAttachment.content)))
            if attachment is None:
                raise NotFound(_("Claim %(claim_id)s has no attachment %(attachment_id)s.", claim_id=claim_id,
                                 attachment_id=attachment_id), code="attachment_not_found")
            return attachment

    def plan_investigation(self, item_id: int, activities: Iterable[PlannedActivity], user: str,
                           expected_version: int | None = None) -> WorkItem:
        """Complete the "Plan the investigation" step with a list of activities."""
        lines = [f"{a.owner}; {a.due_on.isoformat()}; {a.description.strip()}" for a in activities]
        with self.engine.reading() as session:
            problems = plan_problems(session, "\n".join(lines), self.now.date())
        if problems:
            raise InvalidData("investigation plan", problems)
        return self.engine.complete(item_id, {"plan": "\n".join(lines)}, user, expected_version=expected_version)


def parse_plan(text: str) -> list[tuple[int, list[str]]]:
    """(line number, [owner, due date, what to do]) of the plan's lines, as the BPMN's
    "Read the plan" script splits them; blank lines are skipped."""
    return [(number, [part.strip() for part in line.split(";", 2)])
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def plan_problems(session: Session, text: str, today: date) -> dict[str, FieldError]:
    problems: dict[str, FieldError] = {}
    lines = parse_plan(text)
    if not lines:
        problems["plan"] = FieldError("empty_plan", _("list at least one activity: owner; due date; what to do"))
    for number, parts in lines:
        where = f"plan line {number}"
        if len(parts) != 3 or not all(parts):
            problems[where] = FieldError("bad_plan_line", _("write it as: owner; due date (YYYY-MM-DD); what to do"))
            continue
        owner, due, _description = parts
        user = people.find_user(session, owner)
        if user is None or not user.active:
            problems[where] = no_such_user(owner, active=True)
            continue
        try:
            due_on = date.fromisoformat(due)
        except ValueError:
            problems[where] = FieldError("not_a_date", _("%(value)s is not a date such as %(example)s",
                                                         value=repr(due), example="2026-12-31"))
            continue
        if due_on < today:
            problems[where] = FieldError("in_the_past", _("the due date %(date)s is in the past", date=due))
    return problems


def record_plan(session: Session, claim: Claim, text: str, events: list[HistoryEvent]) -> None:
    created = [session.get(WorkItem, e.work_item_id) for e in events
               if e.type == EventType.WORK_ITEM_CREATED and e.task_spec == "do_activity"]
    for _number, (owner, due, description) in parse_plan(text):
        due_on = date.fromisoformat(due)
        match = next((item for item in created if item.assignee and item.assignee.username == owner
                      and item.due_at and item.due_at.date() == due_on), None)
        if match is not None:
            created.remove(match)
        session.add(ClaimActivity(claim_id=claim.id, work_item_id=match.id if match else None, owner=owner,
                                  due_on=due_on, description=description))
