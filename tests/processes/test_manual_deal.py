"""The deal with manual stage transitions (S2): free moves, reasons, and 10,000 moves."""

from __future__ import annotations

import pytest

from engine.errors import InvalidFormData
from support.crm import open_item, step


def new_deal(crm, customer, **options):
    return crm.start_deal("manual", customer.id, "ann", "Warehouse racks", by="ann", **options)


def moves(crm, deal):
    return [(m.from_stage, m.to_stage, m.direction, m.reason) for m in crm.deal_moves(deal.id)]


def test_forward_moves_need_no_reason_and_are_recorded(crm, customer):
    deal = new_deal(crm, customer)
    item = open_item(crm.engine, deal.instance_id)
    assert (item.name, item.stage, item.assignee.username) == ("First contact", "First contact", "ann")

    item = step(crm.engine, deal.instance_id, "ann", next_stage="needs_analysis")
    assert item.name == "Needs analysis"
    assert crm.deal(deal.id).current_stage == "needs_analysis"
    assert moves(crm, deal) == [(None, "first_contact", "start", None),
                                ("first_contact", "needs_analysis", "forward", None)]
    [move] = crm.deal_moves(deal.id)[1:]
    assert move.moved_by == "ann" and move.moved_at is not None


def test_a_skip_with_its_reason_on_the_form_moves_at_once(crm, customer):
    deal = new_deal(crm, customer)
    item = step(crm.engine, deal.instance_id, "ann", next_stage="contract", move_reason="framework agreement exists")
    assert item.name == "Contract"
    assert moves(crm, deal)[-1] == ("first_contact", "contract", "skip", "framework agreement exists")


def test_a_skip_or_back_move_without_a_reason_asks_for_one(crm, customer):
    deal = new_deal(crm, customer)
    explain = step(crm.engine, deal.instance_id, "ann", next_stage="negotiation")
    assert explain.name == "Explain the move" and explain.assignee.username == "ann"
    assert crm.deal(deal.id).current_stage == "first_contact"  # nothing moved yet
    with pytest.raises(InvalidFormData) as error:
        crm.engine.complete(explain.id, {"move_reason": ""}, "ann")
    assert list(error.value.errors) == ["move_reason"]

    item = step(crm.engine, deal.instance_id, "ann", move_reason="customer came with a ready specification")
    assert item.name == "Negotiation"
    explain = step(crm.engine, deal.instance_id, "ann", next_stage="needs_analysis")
    assert explain.name == "Explain the move"
    step(crm.engine, deal.instance_id, "ann", move_reason="new requirements")
    assert moves(crm, deal)[1:] == [
        ("first_contact", "negotiation", "skip", "customer came with a ready specification"),
        ("negotiation", "needs_analysis", "back", "new requirements"),
    ]
    # The reason is not carried over to the next, ordinary move.
    step(crm.engine, deal.instance_id, "ann", next_stage="classification")
    assert moves(crm, deal)[-1] == ("needs_analysis", "classification", "forward", None)


def test_staying_on_the_stage_is_no_move(crm, customer):
    deal = new_deal(crm, customer)
    item = step(crm.engine, deal.instance_id, "ann", next_stage="first_contact", stage_notes="no answer yet")
    assert item.name == "First contact"
    assert len(crm.deal_moves(deal.id)) == 1


def test_won_from_the_last_stage_is_forward_and_from_earlier_needs_a_reason(crm, customer):
    deal = new_deal(crm, customer, first_stage="shipment")
    assert crm.deal(deal.id).current_stage == "shipment"
    assert [p.stage for p in crm.deal(deal.id).plan] == ["shipment"]
    assert step(crm.engine, deal.instance_id, "ann", next_stage="won") == []
    assert crm.deal(deal.id).status == "won"
    assert moves(crm, deal)[-1] == ("shipment", "won", "won", None)

    early = new_deal(crm, customer)
    assert step(crm.engine, early.instance_id, "ann", next_stage="won").name == "Explain the move"
    assert step(crm.engine, early.instance_id, "ann", move_reason="repeat order, paid upfront") == []
    assert crm.deal(early.id).status == "won"
    assert moves(crm, early)[-1] == ("first_contact", "won", "skip", "repeat order, paid upfront")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stage", ["first_contact", "commercial_offer", "payment", "shipment"])
def test_lost_from_any_stage_records_the_reason(crm, customer, stage):
    deal = new_deal(crm, customer, first_stage=stage)
    record = step(crm.engine, deal.instance_id, "ann", next_stage="lost")
    assert record.name == "Record the loss"
    step(crm.engine, deal.instance_id, "ann", lost_reason="price")
    deal = crm.deal(deal.id)
    assert (deal.status, deal.lost_reason, deal.current_stage) == ("lost", "price", stage)
    assert moves(crm, deal)[-1] == (stage, "lost", "lost", "Price too high")


def test_every_stage_task_offers_every_target(crm, customer):
    deal = new_deal(crm, customer)
    form = crm.engine.user_task_form(open_item(crm.engine, deal.instance_id))
    [next_stage] = [f for f in form if f.id == "next_stage"]
    assert next_stage.required
    assert [o for o, _ in next_stage.options] == [
        "first_contact", "needs_analysis", "classification", "commercial_offer", "negotiation", "contract",
        "payment", "shipment", "won", "lost"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_manual_deal_survives_ten_thousand_moves(crm, customer):
    deal = new_deal(crm, customer)
    engine = crm.engine
    targets = ["needs_analysis", "first_contact"]  # forward, then back with its reason
    for number in range(10_000):
        item = open_item(engine, deal.instance_id)
        target = targets[number % 2]
        reason = f"move {number}" if target == "first_contact" else None
        engine.complete(item.id, {"next_stage": target, "move_reason": reason}, "ann")
    assert crm.deal_move_count(deal.id) == 10_001  # the start and 10,000 moves
    last = crm.deal_moves(deal.id)[-1]
    assert (last.from_stage, last.to_stage, last.direction, last.reason) == (
        "needs_analysis", "first_contact", "back", "move 9999")
    # ... and it still works: on to the end.
    step(engine, deal.instance_id, "ann", next_stage="shipment", move_reason="all agreed")
    step(engine, deal.instance_id, "ann", next_stage="won")
    assert crm.deal(deal.id).status == "won"
