"""The typical sale (S1, S4): every path of typical_sale.bpmn, and its classification gate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree

from engine.errors import InvalidFormData
from support import LIBRARY
from support.crm import CLASSIFIED, open_item, step

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def offer(clock, discount=5):
    return {"offer_amount": 120000, "discount": discount,
            "decision_date": (clock.now + timedelta(days=5)).date().isoformat(), "outcome": "sent"}


def new_deal(crm, customer):
    return crm.start_deal("typical", customer.id, "ann", "Packaging line", by="ann", amount="1 250 000,50")


def to_commercial_offer(crm, deal):
    engine, iid = crm.engine, deal.instance_id
    step(engine, iid, "ann", contact_summary="call booked", outcome="continue")
    step(engine, iid, "ann", needs="two lines", budget=2000000, outcome="continue")
    return step(engine, iid, "ann", **CLASSIFIED)


def test_a_won_sale_passes_every_stage_in_order_and_records_each_move(crm, customer, clock):
    deal = new_deal(crm, customer)
    assert deal.number == "D-000001" and deal.status == "in_progress" and deal.current_stage == "first_contact"
    assert str(deal.amount) == "1250000.50"
    assert [p.stage for p in deal.plan][:2] == ["first_contact", "needs_analysis"]
    assert crm.engine.instance(deal.instance_id).instance.business_key == deal.number

    item = to_commercial_offer(crm, deal)
    assert item.name == "Commercial offer" and item.assignee.username == "ann"
    item = step(crm.engine, deal.instance_id, "ann", **offer(clock))
    assert item.name == "Negotiation / awaiting decision"
    assert item.due_at.date() == (clock.now + timedelta(days=5)).date()  # the promised decision date
    step(crm.engine, deal.instance_id, "ann", outcome="agreed")
    step(crm.engine, deal.instance_id, "ann", contract_number="K-17", outcome="signed")
    step(crm.engine, deal.instance_id, "ann", paid_amount=120000, outcome="paid")
    assert step(crm.engine, deal.instance_id, "ann", shipment_document="TN-5", outcome="shipped") == []

    deal = crm.deal(deal.id)
    assert deal.status == "won" and deal.closed_at is not None
    moves = crm.deal_moves(deal.id)
    assert [(m.from_stage, m.to_stage, m.direction) for m in moves] == [
        (None, "first_contact", "start"),
        ("first_contact", "needs_analysis", "forward"),
        ("needs_analysis", "classification", "forward"),
        ("classification", "commercial_offer", "forward"),
        ("commercial_offer", "negotiation", "forward"),
        ("negotiation", "contract", "forward"),
        ("contract", "payment", "forward"),
        ("payment", "shipment", "forward"),
        ("shipment", "won", "won"),
    ]
    assert all(m.moved_by == "ann" for m in moves[1:])


STAGE_STEPS = [
    ("first_contact", {"contact_summary": "x"}),
    ("needs_analysis", {"needs": "x"}),
    ("classification", {}),
    ("commercial_offer", None),
    ("negotiation", {}),
    ("contract", {}),
    ("payment", {}),
    ("shipment", {}),
]
PROCEED = {"first_contact": {"outcome": "continue"}, "needs_analysis": {"outcome": "continue"},
           "classification": CLASSIFIED, "negotiation": {"outcome": "agreed"}, "contract": {"outcome": "signed"},
           "payment": {"outcome": "paid"}, "shipment": {"outcome": "shipped"}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lost_at", [code for code, _ in STAGE_STEPS])
def test_the_deal_can_be_lost_at_every_stage_with_a_reason(crm, customer, clock, lost_at):
    deal = new_deal(crm, customer)
    for code, _ in STAGE_STEPS:
        if code == lost_at:
            break
        data = offer(clock) if code == "commercial_offer" else PROCEED[code]
        step(crm.engine, deal.instance_id, "ann", **data)
    lost_form = {"outcome": "lost"}
    if lost_at == "commercial_offer":
        lost_form = {**offer(clock), "outcome": "lost"}
    record = step(crm.engine, deal.instance_id, "ann", **lost_form)
    assert record.name == "Record the loss"
    with pytest.raises(InvalidFormData) as error:
        crm.engine.complete(record.id, {}, "ann")
    assert "lost_reason" in error.value.errors
    step(crm.engine, deal.instance_id, "ann", lost_reason="competitor", loss_comment="cheaper offer")

    deal = crm.deal(deal.id)
    assert (deal.status, deal.lost_reason, deal.lost_comment) == ("lost", "competitor", "cheaper offer")
    last = crm.deal_moves(deal.id)[-1]
    assert (last.from_stage, last.to_stage, last.reason) == (lost_at, "lost", "Chose a competitor")


def test_the_loss_is_recorded_on_both_backends(crm, customer):
    deal = new_deal(crm, customer)
    step(crm.engine, deal.instance_id, "ann", outcome="lost")
    step(crm.engine, deal.instance_id, "ann", lost_reason="no_budget")
    assert crm.deal(deal.id).status == "lost"


def test_a_big_discount_needs_a_head_and_a_refusal_sends_the_offer_back(crm, customer, clock):
    deal = new_deal(crm, customer)
    to_commercial_offer(crm, deal)
    approval = step(crm.engine, deal.instance_id, "ann", **offer(clock, discount=20))
    assert approval.name == "Approve discount" and approval.assignee is None
    assert approval.candidate_groups == ["heads"] and approval.stage == "Commercial offer"

    revised = step(crm.engine, deal.instance_id, "boss", discount_approved=False, approval_comment="max 10%")
    assert revised.name == "Commercial offer"
    approval = step(crm.engine, deal.instance_id, "ann", **offer(clock, discount=12))
    negotiation = step(crm.engine, deal.instance_id, "boss", discount_approved=True)
    assert negotiation.name == "Negotiation / awaiting decision"
    # The deal stayed in the offer stage while the head decided: no back-and-forth moves.
    stages = [(m.from_stage, m.to_stage) for m in crm.deal_moves(deal.id)]
    assert stages[-1] == ("commercial_offer", "negotiation")
    assert stages.count(("classification", "commercial_offer")) == 1


def test_the_customer_may_ask_for_a_revised_offer(crm, customer, clock):
    deal = new_deal(crm, customer)
    to_commercial_offer(crm, deal)
    step(crm.engine, deal.instance_id, "ann", **offer(clock))
    again = step(crm.engine, deal.instance_id, "ann", outcome="revise_offer", negotiation_notes="too expensive")
    assert again.name == "Commercial offer"
    back = crm.deal_moves(deal.id)[-1]
    assert (back.from_stage, back.to_stage, back.direction) == ("negotiation", "commercial_offer", "back")
    assert back.reason == "the customer asked to revise the offer"


# -- the classification gate (S1) -----------------------------------------------------------


def test_the_commercial_offer_is_reachable_only_through_the_classification():
    """Structurally: without the classification task no path leads from the start to the offer."""
    process = etree.parse(str(LIBRARY / "typical_sale.bpmn")).find(f"{BPMN}process")
    flows = [(f.get("sourceRef"), f.get("targetRef")) for f in process.iter(f"{BPMN}sequenceFlow")]

    def reachable(without):
        seen, todo = set(), ["start"]
        while todo:
            node = todo.pop()
            for source, target in flows:
                if source == node and target != without and target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    assert "commercial_offer" in reachable(without=None)
    assert "commercial_offer" not in reachable(without="classification")
    # ... and the one flow out of the classification's gateway into the offer demands all conditions.
    [gate] = [f for f in process.iter(f"{BPMN}sequenceFlow")
              if f.get("sourceRef") == "gw_classified" and f.get("targetRef") == "commercial_offer"]
    condition = gate.findtext(f"{BPMN}conditionExpression")
    assert all(name in condition for name in ("price_type", "payment_terms", "delivery_terms"))


def test_the_classification_cannot_be_skipped_through_the_api(crm, customer, clock):
    deal = new_deal(crm, customer)
    step(crm.engine, deal.instance_id, "ann", outcome="continue")
    needs = open_item(crm.engine, deal.instance_id)
    # Sales conditions, an offer or a "classified" flag slipped into an earlier step are refused.
    for smuggled in ({"classified": True}, {"price_type": "dealer"}, {"offer_amount": 1}, {"outcome": "classified"}):
        with pytest.raises(InvalidFormData) as error:
            crm.engine.complete(needs.id, {"outcome": "continue", **smuggled}, "ann")
        assert set(error.value.errors) <= set(smuggled) | {"outcome"}
    step(crm.engine, deal.instance_id, "ann", outcome="continue")

    classification = open_item(crm.engine, deal.instance_id)
    assert classification.name == "Customer classification"
    with pytest.raises(InvalidFormData) as error:
        crm.engine.complete(classification.id, {**CLASSIFIED, "price_type": "free"}, "ann")
    assert list(error.value.errors) == ["price_type"]
    with pytest.raises(InvalidFormData):
        crm.engine.complete(classification.id, {**CLASSIFIED, "offer_amount": 5}, "ann")
    # Claiming "classified" without all three conditions keeps the deal in classification.
    again = step(crm.engine, deal.instance_id, "ann", outcome="classified", price_type="retail")
    assert again.name == "Customer classification"
    assert crm.deal(deal.id).current_stage == "classification"
    assert step(crm.engine, deal.instance_id, "ann", **CLASSIFIED).name == "Commercial offer"
