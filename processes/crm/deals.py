"""Deals (S1-S4): typical and manual sales run by their processes, project deals with their
tasks, the stage plan against actual."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from engine import people
from engine.errors import FieldError, NotAuthorized
from processes.crm.base import CrmBase, get_record, manages
from processes.crm.definitions import DEAL_PROCESSES, PROJECT_TASK_PROCESS
from processes.errors import (
    MUST_CARRY_TIME_ZONE,
    REQUIRED,
    InvalidData,
    no_such_user,
    one_of,
    record_not_found,
)
from processes.models import Customer, Deal, DealKind, DealMove, DealStagePlan, DealStatus, DealTask
from processes.stages import BY_CODE, LOST, LOST_REASONS, STAGE_CODES, STAGES, WON
from processes.texts import _, ngettext


@dataclass(frozen=True)
class StagePlanRow:
    """S4/D4: one stage of a deal, planned against actual."""

    stage: str
    label: str
    planned_end: date | None
    entered_at: datetime | None  # the last time the deal entered it
    left_at: datetime | None
    deviation_days: int | None  # actual (or, while in it, today's) date minus the planned end


class Deals(CrmBase):
    """Deals (S1-S4): opening them, their stages against the plan, project deals' tasks."""

    def start_deal(self, kind: str, customer_id: int, curator: str, title: str, by: str, *,
                   amount: Decimal | int | str | None = None, first_stage: str = STAGES[0].code) -> Deal:
        """Open a deal. A typical or manual deal starts its process, and the deal record is
        written in the same transaction; a project (non-process) deal is a record whose
        tasks are added with ``add_project_task``."""
        errors: dict[str, FieldError] = {}
        if kind not in {k.value for k in DealKind}:
            errors["kind"] = one_of(k.value for k in DealKind)
        if not title or not title.strip():
            errors["title"] = REQUIRED
        parsed_amount = None
        if amount not in (None, ""):
            try:
                parsed_amount = Decimal(str(amount).replace(" ", "").replace(",", "."))
                if parsed_amount < 0 or not parsed_amount.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                errors["amount"] = FieldError("not_an_amount", _("%(value)s is not an amount of money",
                                                                 value=repr(amount)))
        if first_stage not in STAGE_CODES:
            errors["first_stage"] = one_of(STAGE_CODES)
        elif kind == DealKind.TYPICAL and first_stage != STAGES[0].code:
            errors["first_stage"] = FieldError("typical_starts_first", _("a typical sale always starts at the first "
                                                                         "contact"))
        if errors:
            raise InvalidData("deal", errors)
        with self.engine.reading() as session:
            customer = get_record(session, Customer, customer_id, "customer")
            curator_user = people.get_user(session, curator)
            starter = people.get_user(session, by)
            if not curator_user.active:
                raise InvalidData("deal", {"curator": FieldError("inactive_user", _("%(user)s is no longer active",
                                                                                    user=curator))})
            if starter.id != curator_user.id and not manages(session, starter, curator_user):
                raise NotAuthorized(_("%(user)s may not open a deal for %(curator)s: only for themselves, or for the "
                                      "people they manage.", user=by, curator=curator), code="may_not_open_deal")
        fields = dict(kind=kind, title=title.strip(), customer_id=customer.id, curator_id=curator_user.id,
                      amount=parsed_amount, created_by=by)

        if kind == DealKind.PROJECT:
            with self.engine.transaction() as session:
                deal = self.new_deal(session, fields, instance_id=None, first_stage=None)
            return self.deal(deal.id)

        created: list[Deal] = []

        def create(session: Session, instance_id: int) -> str:
            created.append(self.new_deal(session, fields, instance_id=instance_id, first_stage=first_stage))
            return created[-1].number

        data = {"curator": curator, "customer_name": customer.name, "deal_title": title.strip(),
                "amount": float(parsed_amount) if parsed_amount is not None else None}
        if kind == DealKind.MANUAL:
            data.update(stage=first_stage, move_reason=None)
        self.engine.start(DEAL_PROCESSES[kind], data, started_by=by, within=create)
        return self.deal(created[-1].id)

    def new_deal(self, session: Session, fields: dict, instance_id: int | None, first_stage: str | None) -> Deal:
        now = self.now
        deal = Deal(**fields, instance_id=instance_id, status=DealStatus.IN_PROGRESS, created_at=now)
        if fields["kind"] != DealKind.PROJECT:
            # The plan: each stage from the first one on ends after its planned duration.
            end = now.date()
            for stage in STAGES[STAGE_CODES.index(first_stage):]:
                end += timedelta(days=stage.planned_days)
                deal.plan.append(DealStagePlan(stage=stage.code, planned_end=end))
        session.add(deal)
        session.flush()
        deal.number = f"D-{deal.id:06d}"
        return deal

    def deal(self, deal_id: int) -> Deal:
        with self.engine.reading() as session:
            deal = session.get(Deal, deal_id, options=[selectinload(Deal.plan)])
            if deal is None:
                raise record_not_found("deal", deal_id)
            deal.customer
            return deal

    def deal_moves(self, deal_id: int, latest: int | None = None) -> list[DealMove]:
        """The deal's stage moves, oldest first; only the ``latest`` ones when given."""
        with self.engine.reading() as session:
            query = select(DealMove).where(DealMove.deal_id == deal_id).order_by(DealMove.id.desc()).limit(latest)
            return list(reversed(session.scalars(query).all()))

    def deal_move_count(self, deal_id: int) -> int:
        with self.engine.reading() as session:
            return session.scalar(select(func.count()).select_from(DealMove).where(DealMove.deal_id == deal_id))

    def stage_plan(self, deal_id: int) -> list[StagePlanRow]:
        """Each stage of the deal: planned end, when it was actually entered and left, and
        the deviation in days (positive: behind the plan)."""
        deal = self.deal(deal_id)
        planned = {p.stage: p.planned_end for p in deal.plan}
        entered: dict[str, datetime] = {}
        left: dict[str, datetime] = {}
        for move in self.deal_moves(deal_id):
            if move.from_stage:
                left[move.from_stage] = move.moved_at
            if move.to_stage in BY_CODE:
                entered[move.to_stage] = move.moved_at
                left.pop(move.to_stage, None)
        today = self.now.date()
        rows = []
        for stage in STAGES:
            end = planned.get(stage.code)
            actual = left.get(stage.code)
            if actual is None and stage.code == deal.current_stage and deal.status == DealStatus.IN_PROGRESS:
                reference = today
            else:
                reference = actual.date() if actual else None
            deviation = (reference - end).days if end and reference else None
            rows.append(StagePlanRow(stage.code, stage.label, end, entered.get(stage.code), actual, deviation))
        return rows

    def set_stage_plan(self, deal_id: int, planned_ends: dict[str, date], by: str) -> Deal:
        """Change the planned end of stages of a deal (S4)."""
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            deal = get_record(session, Deal, deal_id, "deal")
            if actor.id != deal.curator_id and not manages(session, actor, deal.curator):
                raise NotAuthorized(_("%(user)s may not change the plan of %(deal)s: it is %(curator)s's deal.",
                                      user=by, deal=deal.number, curator=deal.curator.username), code="not_curator")
            unknown = [stage for stage in planned_ends if stage not in STAGE_CODES]
            if unknown:
                raise InvalidData("stage plan", {stage: FieldError("not_a_stage", _("is not a sales stage"))
                                                 for stage in unknown})
            if deal.kind == DealKind.PROJECT:
                raise InvalidData("stage plan", {"deal": FieldError("no_stages", _("a project deal has no stages"))})
            existing = {p.stage: p for p in deal.plan}
            for stage, planned_end in planned_ends.items():
                if stage in existing:
                    existing[stage].planned_end = planned_end
                else:
                    deal.plan.append(DealStagePlan(stage=stage, planned_end=planned_end))
        return self.deal(deal_id)

    def add_project_task(self, deal_id: int, title: str, owner: str, due_at: datetime | None, by: str,
                         description: str | None = None) -> DealTask:
        """A task of a non-process deal: a work item in the owner's inbox with its deadline."""
        errors: dict[str, FieldError] = {}
        if not title or not title.strip():
            errors["title"] = REQUIRED
        if due_at is None:
            errors["due_at"] = REQUIRED
        elif due_at.tzinfo is None:
            errors["due_at"] = MUST_CARRY_TIME_ZONE
        with self.engine.reading() as session:
            deal = get_record(session, Deal, deal_id, "deal")
            actor = people.get_user(session, by)
            if actor.id != deal.curator_id and not manages(session, actor, deal.curator):
                raise NotAuthorized(_("%(user)s may not add tasks to %(deal)s: it is %(curator)s's deal.",
                                      user=by, deal=deal.number, curator=deal.curator.username), code="not_curator")
            if deal.kind != DealKind.PROJECT:
                errors["deal"] = FieldError("steps_from_process", _("%(deal)s is a %(kind)s deal: its steps come from "
                                                                    "its process", deal=deal.number, kind=deal.kind))
            elif deal.status != DealStatus.IN_PROGRESS:
                errors["deal"] = FieldError("deal_closed", _("%(deal)s is closed (%(status)s)", deal=deal.number,
                                                             status=deal.status))
            if people.find_user(session, owner) is None:
                errors["owner"] = no_such_user(owner) if owner else REQUIRED
        if errors:
            raise InvalidData("project task", errors)
        created: list[DealTask] = []

        def create(session: Session, instance_id: int) -> str:
            task = DealTask(deal_id=deal_id, instance_id=instance_id, title=title.strip(), description=description,
                            owner=owner, due_at=due_at, created_by=by)
            session.add(task)
            created.append(task)
            return deal.number

        self.engine.start(PROJECT_TASK_PROCESS, {"owner": owner, "due": due_at.isoformat(),
                                                 "task_title": title.strip(), "deal_number": deal.number},
                          started_by=by, within=create)
        return created[-1]

    def close_project_deal(self, deal_id: int, outcome: str, by: str, lost_reason: str | None = None) -> Deal:
        """A project deal has no process to end it: its curator (or a manager) closes it."""
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            deal = get_record(session, Deal, deal_id, "deal")
            if actor.id != deal.curator_id and not manages(session, actor, deal.curator):
                raise NotAuthorized(_("%(user)s may not close %(deal)s: it is %(curator)s's deal.",
                                      user=by, deal=deal.number, curator=deal.curator.username), code="not_curator")
            if outcome not in (WON, LOST):
                raise InvalidData("deal", {"outcome": FieldError("not_an_option", _("must be won or lost"))})
            if outcome == LOST and lost_reason not in LOST_REASONS:
                raise InvalidData("deal", {"lost_reason": one_of(LOST_REASONS)})
            if deal.kind != DealKind.PROJECT:
                raise InvalidData("deal", {"kind": FieldError("closed_by_process", _(
                    "only a project deal is closed by hand; the others by their process"))})
            if deal.status != DealStatus.IN_PROGRESS:
                raise InvalidData("deal", {"status": FieldError("deal_closed", _(
                    "%(deal)s is already %(status)s", deal=deal.number, status=deal.status))})
            open_tasks = session.scalar(select(func.count()).select_from(DealTask)
                                        .where(DealTask.deal_id == deal.id, DealTask.done_at.is_(None)))
            if open_tasks:
                raise InvalidData("deal", {"tasks": FieldError("tasks_open", ngettext(
                    "%(num)d task is still open", "%(num)d tasks are still open", open_tasks))})
            deal.status = outcome
            deal.lost_reason = lost_reason
            deal.closed_at = self.now
        return self.deal(deal_id)

    def deal_tasks(self, deal_id: int) -> list[DealTask]:
        with self.engine.reading() as session:
            return list(session.scalars(select(DealTask).where(DealTask.deal_id == deal_id).order_by(DealTask.id)))
