"""Deal and claim records follow their process instances: stage moves, outcomes,
investigation results, each written in the transaction of the engine step that caused it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import people
from engine.models import EventType, HistoryEvent, ProcessInstance, WorkItem
from engine.runtime import Engine
from processes.crm.claims import plan_problems, record_plan
from processes.crm.definitions import (
    CLAIM_PROCESS,
    CLAIM_STAGES,
    CURATOR_LANE,
    DEAL_PROCESSES,
    INFORMED_BY,
    PROJECT_TASK_PROCESS,
)
from processes.errors import InvalidData, no_such_user
from processes.models import (
    Claim,
    ClaimActivity,
    ClaimStatus,
    Deal,
    DealMove,
    DealStatus,
    DealTask,
    Interaction,
    InteractionStatus,
)
from processes.stages import BY_LABEL, LOST, LOST_REASONS, WON, move_direction, stage_index


def submitted(events: list[HistoryEvent]) -> tuple[str | None, dict[str, Any]]:
    """Who completed a step in this transaction, and the values of the form."""
    actor, data = None, {}
    for event in events:
        if event.type == EventType.WORK_ITEM_COMPLETED:
            actor = event.actor
            data.update((event.detail or {}).get("data") or {})
    return actor, data


TYPICAL_BACK_REASONS = {"revise_offer": "the customer asked to revise the offer"}


def follow_deal(engine: Engine, session: Session, deal: Deal, events: list[HistoryEvent]) -> None:
    actor, data = submitted(events)
    reason = data.get("move_reason") or TYPICAL_BACK_REASONS.get(data.get("outcome"))
    for event in events:
        if event.type == EventType.STAGE_ENTERED:
            stage = BY_LABEL.get((event.detail or {}).get("stage"))
            if stage is not None and stage.code != deal.current_stage:
                move_deal(session, deal, stage.code, actor, event.at, reason)
        elif event.type == EventType.WORK_ITEM_CREATED:
            follow_curator(engine, session, deal, event)
        elif event.type == EventType.TASK_COMPLETED and event.task_spec in ("end_won", "end_lost"):
            won = event.task_spec == "end_won"
            deal.status = DealStatus.WON if won else DealStatus.LOST
            deal.closed_at = event.at
            if not won:
                deal.lost_reason = data.get("lost_reason")
                deal.lost_comment = data.get("loss_comment")
            if won:  # from the last stage, or a skip straight to won that was explained
                direction = move_direction(deal.current_stage, WON)
                why = reason if direction == "skip" else None
            else:
                direction, why = LOST, LOST_REASONS.get(data.get("lost_reason") or "")
            record_move(session, deal, WON if won else LOST, direction, actor, event.at, why)


def move_deal(session: Session, deal: Deal, to_stage: str, actor: str | None, at: datetime, reason: str | None) -> None:
    direction = move_direction(deal.current_stage, to_stage)
    record_move(session, deal, to_stage, direction, actor, at, reason if direction in ("skip", "back") else None)
    deal.current_stage = to_stage
    deal.stage_entered_at = at


def record_move(session: Session, deal: Deal, to_stage: str, direction: str, actor: str | None, at: datetime,
                 reason: str | None) -> None:
    """The move, with what the funnel derives from it (see ``DealMove``): it ends the stay
    that the deal's latest move began, and may be the deal's first entry into the stage
    and its furthest point yet. One step can move a deal twice (a stage, then won), and an
    engine step's session does not autoflush: the flush lets the selects see the move
    before. The (deal, id) index answers both."""
    session.flush()
    latest = session.scalar(select(DealMove).where(DealMove.deal_id == deal.id).order_by(DealMove.id.desc()).limit(1))
    if latest is not None:
        latest.stay_days = (at - latest.moved_at).total_seconds() / 86400
    entered_before = session.scalar(select(func.count()).select_from(DealMove)
                                    .where(DealMove.deal_id == deal.id, DealMove.to_stage == to_stage))
    session.add(DealMove(deal_id=deal.id, from_stage=deal.current_stage, to_stage=to_stage, direction=direction,
                         moved_by=actor, moved_at=at, reason=reason, stay_days=None, first_entry=not entered_before,
                         deal_kind=deal.kind, deal_created_at=deal.created_at))
    if to_stage != LOST and (deal.furthest_stage is None or stage_index(to_stage) > stage_index(deal.furthest_stage)):
        deal.furthest_stage = to_stage


def follow_curator(engine: Engine, session: Session, deal: Deal, event: HistoryEvent) -> None:
    """A new step of the deal's curator goes to the deal's curator of today, even when the
    process still holds the curator it was started with (an inactive curator gets nothing)."""
    item = session.get(WorkItem, event.work_item_id)
    if item is None or item.lane != CURATOR_LANE or item.assignee_id is None or item.assignee_id == deal.curator_id:
        return
    if deal.curator.active:
        engine.reassign_in(session, item, deal.curator.username, actor=None, reason="the deal's curator has changed")


def follow_claim(session: Session, claim: Claim, events: list[HistoryEvent], now: datetime) -> None:
    actor, data = submitted(events)
    completed = {e.task_spec for e in events if e.type == EventType.WORK_ITEM_COMPLETED}
    if "triage" in completed:
        officer = people.find_user(session, data.get("responsible_officer") or "")
        if officer is None or not officer.active:
            raise InvalidData("triage", {"responsible_officer": no_such_user(data.get("responsible_officer"),
                                                                             active=True)})
        claim.responsible_officer = officer.username
    if "plan_investigation" in completed:
        problems = plan_problems(session, data.get("plan") or "", now.date())
        if problems:
            raise InvalidData("investigation plan", problems)
        record_plan(session, claim, data["plan"], events)
    for event in events:
        if event.type == EventType.WORK_ITEM_COMPLETED and event.task_spec == "do_activity":
            activity = session.scalar(select(ClaimActivity).where(ClaimActivity.work_item_id == event.work_item_id))
            if activity is not None:
                activity.result = (event.detail or {}).get("data", {}).get("activity_result")
                activity.done_at = event.at
        elif event.type == EventType.STAGE_ENTERED:
            status = CLAIM_STAGES.get((event.detail or {}).get("stage"))
            if status is not None:
                claim.status = status
        elif event.type == EventType.INSTANCE_COMPLETED:
            claim.status = ClaimStatus.CLOSED
            claim.closed_at = event.at
    if "resolve" in completed:
        claim.resolution = data.get("resolution")
        claim.outcome = data.get("outcome_text")
        claim.resolved_at = now
    if "inform_customer" in completed:
        session.add(Interaction(
            customer_id=claim.customer_id, kind=INFORMED_BY[data["informed_by"]], status=InteractionStatus.DONE,
            subject=f"Claim {claim.number}: customer informed of the resolution ({claim.resolution})",
            notes=data.get("customer_reaction"), at=now, employee=actor, claim_id=claim.id, deal_id=claim.deal_id,
            created_at=now,
        ))


FOLLOWED_PROCESSES = (*DEAL_PROCESSES.values(), CLAIM_PROCESS, PROJECT_TASK_PROCESS)


def follow_processes(engine: Engine, session: Session, events: list[HistoryEvent]) -> None:
    """The engine step listener for ``FOLLOWED_PROCESSES``: each deal, claim and project
    task follows what the step did to its instance."""
    now = engine.clock()
    by_instance: dict[int, list[HistoryEvent]] = {}
    for event in events:
        by_instance.setdefault(event.instance_id, []).append(event)
    for instance_id, instance_events in by_instance.items():
        process_key = session.get(ProcessInstance, instance_id).process_key
        if process_key in DEAL_PROCESSES.values():
            deal = session.scalar(select(Deal).where(Deal.instance_id == instance_id))
            if deal is not None:
                follow_deal(engine, session, deal, instance_events)
        elif process_key == CLAIM_PROCESS:
            claim = session.scalar(select(Claim).where(Claim.instance_id == instance_id))
            if claim is not None:
                follow_claim(session, claim, instance_events, now)
        elif process_key == PROJECT_TASK_PROCESS:
            task = session.scalar(select(DealTask).where(DealTask.instance_id == instance_id))
            if task is not None:
                follow_project_task(task, instance_events)


def follow_project_task(task: DealTask, events: list[HistoryEvent]) -> None:
    for event in events:
        if event.type == EventType.WORK_ITEM_COMPLETED:
            task.result = (event.detail or {}).get("data", {}).get("result")
            task.done_at = event.at
