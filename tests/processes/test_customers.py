"""Customers (D1), the duplicate check (D2), interactions (D3), the customer card (D4),
non-process deals (S3) and the curator change (E3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import NotAuthorized
from processes.crm import ClaimDraft
from processes.customers import ContactDraft, key_condition
from processes.errors import DuplicateCustomer, InvalidData
from processes.models import CustomerKey
from support.crm import draft, open_item, step


def test_a_customer_is_registered_with_its_contacts_and_normalised_keys(crm, customer):
    assert customer.name == "ООО «Ромашка»" and customer.inn == "7707083893"
    assert customer.phones == ["74951234567"] and customer.curator.username == "ann"
    [contact] = customer.contacts
    assert (contact.position, contact.decision_role, contact.phones) == ("Director", "decision_maker", ["79160000001"])
    with crm.engine.reading() as session:
        keys = set(session.execute(select(CustomerKey.kind, CustomerKey.value)).all())
    assert keys == {("name", "ромашка"), ("inn", "7707083893"), ("phone", "74951234567"),
                    ("email", "info@romashka.ru"), ("phone", "79160000001")}


def test_likely_duplicates_are_shown_with_the_reason_of_each_match(crm, customer):
    other = draft(name="Ромашка, ООО", inn_prefix=None, phones=["8 (495) 123 45 67"], emails=["INFO@romashka.ru"])
    [candidate] = crm.find_duplicates(other)
    assert candidate.customer_id == customer.id
    assert tuple(map(str, candidate.reasons)) == ("same e-mail info@romashka.ru", "same name “ромашка”",
                                                  "same phone +74951234567")
    assert [(reason.kind, reason.value) for reason in candidate.reasons] == [
        ("email", "info@romashka.ru"), ("name", "ромашка"), ("phone", "74951234567")]
    assert candidate.reasons[2].render("ru") == "тот же телефон +74951234567"

    with pytest.raises(DuplicateCustomer) as refused:
        crm.register_customer(other, by="bob")
    assert refused.value.candidates == [candidate] and "register deliberately" in str(refused.value)
    by_inn = crm.find_duplicates(draft(name="Completely different"))
    assert tuple(map(str, by_inn[0].reasons)) == ("same INN 7707083893",)
    # A contact person's phone finds the company too.
    assert crm.find_duplicates(draft(name="X", inn_prefix=None, phones=["+7 916 000 00 01"]))[0].customer_id == customer.id

    deliberate = crm.register_customer(other, by="bob", allow_duplicates=True)
    assert deliberate.duplicates == [candidate] and deliberate.customer.id != customer.id
    assert crm.find_duplicates(draft(name="Nothing alike", inn_prefix="500100732")) == []


def test_bad_customer_data_is_refused_field_by_field(crm):
    with pytest.raises(InvalidData) as error:
        crm.register_customer(draft(name=" ", inn_prefix=None, kind="alien", phones=["12"], emails=["nope"],
                                    importance="Z", contacts=[ContactDraft(name="", emails=["bad@"])]), by="ann")
    assert set(error.value.errors) == {"name", "kind", "phones", "emails", "importance", "contacts[1].name",
                                       "contacts[1].emails"}
    with pytest.raises(InvalidData) as error:
        crm.register_customer(draft(inn_prefix=None, inn="7707083890"), by="ann")
    assert "check digit" in str(error.value.errors["inn"])
    assert error.value.errors["inn"].code == "inn_check_digit"


def test_search_by_inn_phone_email_or_part_of_the_name(crm, customer):
    assert [c.id for c in crm.search_customers("7707083893")] == [customer.id]
    assert [c.id for c in crm.search_customers("8 495 123-45-67")] == [customer.id]
    assert [c.id for c in crm.search_customers("Info@Romashka.ru")] == [customer.id]
    assert [c.id for c in crm.search_customers("омаш")] == [customer.id]
    assert crm.search_customers("100%_") == []


def test_interactions_make_one_timeline_per_customer(crm, customer, clock):
    deal = crm.start_deal("typical", customer.id, "ann", "Racks", by="ann")
    crm.log_interaction(customer.id, "call_in", "Asked for a price list", "ann", deal_id=deal.id)
    clock.advance(days=1)
    crm.log_interaction(customer.id, "meeting", "Visit the plant", "ann", status="planned",
                        at=clock.now + timedelta(days=7), contact_person_id=customer.contacts[0].id)
    timeline = crm.timeline(customer.id)
    assert [(i.kind, i.status) for i in timeline] == [("meeting", "planned"), ("call_in", "done")]
    assert [i.subject for i in crm.timeline(customer.id, deal_id=deal.id)] == ["Asked for a price list"]

    stranger = crm.register_customer(draft(name="Other", inn_prefix="500100732"), by="ann").customer
    with pytest.raises(InvalidData) as error:
        crm.log_interaction(stranger.id, "fax", "", "ann", deal_id=deal.id)
    assert set(error.value.errors) == {"kind", "subject", "deal_id"}


def test_a_project_deal_holds_tasks_that_are_work_items_with_owners_and_deadlines(crm, customer, clock):
    deal = crm.start_deal("project", customer.id, "ann", "Plant modernisation", by="ann", amount=9_000_000)
    assert deal.instance_id is None and deal.current_stage is None and deal.plan == []
    due = clock.now + timedelta(days=10)
    task = crm.add_project_task(deal.id, "Agree the specification", "bob", due, by="ann")
    [item] = crm.engine.work_items(assignee="bob")
    assert item.instance_id == task.instance_id and item.due_at == due and item.name == "Project task"
    assert crm.engine.instance(task.instance_id).instance.business_key == deal.number

    with pytest.raises(InvalidData, match="task"):
        crm.close_project_deal(deal.id, "won", by="ann")  # a task is still open
    crm.engine.complete(item.id, {"result": "specification signed"}, "bob")
    [done] = crm.deal_tasks(deal.id)
    assert done.result == "specification signed" and done.done_at == clock.now
    with pytest.raises(NotAuthorized):
        crm.close_project_deal(deal.id, "won", by="bob")
    assert crm.close_project_deal(deal.id, "won", by="ann").status == "won"

    typical = crm.start_deal("typical", customer.id, "ann", "Racks", by="ann")
    with pytest.raises(InvalidData, match="its process"):
        crm.add_project_task(typical.id, "x", "ann", due, by="ann")


def test_the_customer_card_shows_every_process_its_stage_and_its_deviation(crm, customer, clock):
    crm.start_deal("typical", customer.id, "ann", "Late sale", by="ann")
    on_time = crm.start_deal("manual", customer.id, "ann", "Fresh sale", by="ann", first_stage="negotiation")
    lost = crm.start_deal("manual", customer.id, "ann", "Lost sale", by="ann")
    step(crm.engine, lost.instance_id, "ann", next_stage="lost")
    step(crm.engine, lost.instance_id, "ann", lost_reason="price")
    claim = crm.register_claim(ClaimDraft(customer.id, "Пётр Иванов", "Wet boxes", "damaged"), by="olga")
    clock.advance(days=21)  # first contact was planned for 2 days
    step(crm.engine, on_time.instance_id, "ann", next_stage="contract")

    card = crm.customer_card(customer.id)
    rows = {p.title: p for p in card.processes}
    assert rows["Late sale"].stage == "First contact"
    assert rows["Late sale"].deviation_days == 19
    assert rows["Late sale"].next_step == "First contact" and rows["Late sale"].days_left == -19
    assert "19 days behind plan" in str(rows["Late sale"].describe)
    assert rows["Fresh sale"].stage == "Contract" and rows["Fresh sale"].days_left == 3
    assert rows["Lost sale"].status == "lost" and rows["Lost sale"].deviation_days is None
    assert rows["Wet boxes"].kind == "claim" and rows["Wet boxes"].status == "triage"
    assert rows["Wet boxes"].planned_end == claim.response_due_at.date()
    assert rows["Wet boxes"].next_step == "Triage the claim"
    assert str(card.summary) == ("2 running deals, 0 won, 1 lost, 1 open claim; "
                                 "2 of them are behind plan, by up to 19 days")
    assert card.summary.render("ru") == ("2 сделки в работе, 0 выиграно, 1 проиграна, 1 открытая претензия; "
                                         "из них 2 отстают от плана, самое большее на 19 дней")


def test_a_pending_decision_shows_the_days_left(crm, customer, clock):
    deal = crm.start_deal("typical", customer.id, "ann", "Offer", by="ann")
    step(crm.engine, deal.instance_id, "ann", outcome="continue")
    step(crm.engine, deal.instance_id, "ann", outcome="continue")
    step(crm.engine, deal.instance_id, "ann", price_type="retail", payment_terms="prepayment",
         delivery_terms="pickup", outcome="classified")
    step(crm.engine, deal.instance_id, "ann", offer_amount=1000, outcome="sent",
         decision_date=(clock.now + timedelta(days=2)).date().isoformat())
    [row] = crm.customer_card(customer.id).processes
    assert (row.stage, row.days_left) == ("Negotiation", 2)
    assert str(row.describe).endswith("Negotiation / awaiting decision: 2 days left")


def test_handing_customers_over_moves_their_deals_and_open_work_in_one_operation(crm, customer, clock):
    deal = crm.start_deal("typical", customer.id, "ann", "Racks", by="ann")
    project = crm.start_deal("project", customer.id, "ann", "Project", by="ann")
    task = crm.add_project_task(project.id, "Call", "ann", clock.now + timedelta(days=3), by="ann")
    second = crm.register_customer(draft(name="Second", inn_prefix="500100732", curator="ann"), by="ann").customer
    other = crm.register_customer(draft(name="Bob's", inn_prefix="780100001", curator="bob"), by="bob").customer

    with pytest.raises(NotAuthorized):
        crm.hand_over_all("ann", "bob", by="olga")  # not ann's manager
    changes = crm.hand_over_all("ann", "bob", by="boss", reason="Anna is leaving")

    assert sorted(c.customer_id for c in changes) == sorted([customer.id, second.id])
    assert crm.customer(customer.id).curator.username == "bob"
    assert crm.customer(other.id).curator.username == "bob"
    assert crm.deal(deal.id).curator.username == "bob"
    moved = open_item(crm.engine, deal.instance_id)
    assert moved.assignee.username == "bob"
    assert open_item(crm.engine, task.instance_id).assignee.username == "bob"
    assert crm.engine.work_items(assignee="ann") == []
    [change] = [c for c in crm.customer_card(customer.id).curator_changes]
    assert (change.from_user, change.to_user, change.changed_by) == ("ann", "bob", "boss")
    assert sorted(change.moved_work_items) == sorted([moved.id, open_item(crm.engine, task.instance_id).id])
    history = crm.engine.instance(deal.instance_id).history
    [reassigned] = [e for e in history if e.type == "work_item_reassigned"]
    assert reassigned.actor == "boss" and reassigned.detail["from"] == "ann" and "Anna is leaving" in reassigned.detail["reason"]

    # The process still says curator=ann: its next steps go to the deal's curator of today.
    nxt = step(crm.engine, deal.instance_id, "bob", outcome="continue")
    assert nxt.name == "Needs analysis" and nxt.assignee.username == "bob"


def test_a_failed_hand_over_changes_nothing(crm, customer):
    with pytest.raises(Exception):
        crm.change_curator([customer.id, 999], "bob", by="boss")
    assert crm.customer(customer.id).curator.username == "ann"


def test_the_stage_plan_shows_planned_against_actual_dates(crm, customer, clock):
    deal = crm.start_deal("typical", customer.id, "ann", "Plan", by="ann")
    start = clock.now.date()
    clock.advance(days=5)  # first contact was planned to end after 2 days
    step(crm.engine, deal.instance_id, "ann", outcome="continue")
    clock.advance(days=1)
    rows = {row.stage: row for row in crm.stage_plan(deal.id)}
    assert rows["first_contact"].planned_end == start + timedelta(days=2)
    assert rows["first_contact"].left_at.date() == start + timedelta(days=5)
    assert rows["first_contact"].deviation_days == 3
    assert rows["needs_analysis"].planned_end == start + timedelta(days=7)
    assert rows["needs_analysis"].deviation_days == -1  # in it today, a day before its planned end
    assert rows["contract"].entered_at is None and rows["contract"].deviation_days is None

    crm.set_stage_plan(deal.id, {"needs_analysis": start + timedelta(days=3)}, by="ann")
    assert {r.stage: r for r in crm.stage_plan(deal.id)}["needs_analysis"].deviation_days == 3
    with pytest.raises(InvalidData):
        crm.set_stage_plan(deal.id, {"moon": start}, by="ann")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_duplicate_check_looks_keys_up_by_index_not_by_scan(crm):
    condition = key_condition([("name", "ромашка"), ("inn", "7707083893"), ("phone", "74951234567"),
                               ("email", "a@b.ru")])
    query = select(CustomerKey.customer_id).where(condition)
    sql = str(query.compile(crm.engine.db, compile_kwargs={"literal_binds": True}))
    with crm.engine.db.connect() as connection:
        plan = " | ".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert plan.count("USING INDEX ix_customer_keys_lookup (kind=? AND value=?)") == 4, plan
    assert "SCAN" not in plan, plan


def test_deals_are_opened_and_planned_by_their_curator_or_the_curators_managers(crm, customer, clock):
    with pytest.raises(NotAuthorized):
        crm.start_deal("typical", customer.id, "ann", "Not mine to open", by="bob")
    deal = crm.start_deal("typical", customer.id, "ann", "Opened by the boss", by="boss")
    assert deal.curator.username == "ann"
    with pytest.raises(NotAuthorized):
        crm.set_stage_plan(deal.id, {"contract": clock.now.date()}, by="bob")
    project = crm.start_deal("project", customer.id, "ann", "Project", by="ann")
    with pytest.raises(NotAuthorized):
        crm.add_project_task(project.id, "x", "bob", clock.now + timedelta(days=1), by="bob")


def test_a_customer_is_edited_and_given_contacts_with_its_keys_kept_current(crm, customer):
    other = crm.register_customer(draft(name="ООО «Лютик»", inn_prefix="500100732", phones=["+7 812 000-00-00"]),
                                  by="bob").customer
    edited = draft(name="ООО «Ромашка-Юг»", phones=["+7 495 765-43-21"], emails=[], curator="ann",
                   category="Wholesale", importance="A")
    result = crm.update_customer(customer.id, edited, by="ann")
    assert (result.customer.name, result.customer.category, result.customer.phones) == (
        "ООО «Ромашка-Юг»", "Wholesale", ["74957654321"])
    assert result.customer.contacts[0].name == "Пётр Иванов"  # contacts stay
    assert crm.find_duplicates(draft(name="x", inn_prefix=None, phones=["+7 495 123-45-67"])) == []  # old phone gone
    assert crm.find_duplicates(draft(name="x", inn_prefix=None, phones=["8 916 000-00-01"]))[0].customer_id == customer.id

    with pytest.raises(DuplicateCustomer):
        crm.update_customer(customer.id, draft(name="Лютик", curator="ann"), by="ann")
    with pytest.raises(InvalidData, match="change_curator"):
        crm.update_customer(customer.id, draft(curator="bob"), by="ann")

    person = crm.add_contact(other.id, ContactDraft("Мария", position="Buyer", emails=["maria@lutik.ru"]), by="bob")
    assert person.id and crm.customer(other.id).contacts[0].emails == ["maria@lutik.ru"]
    assert crm.find_duplicates(draft(name="y", inn_prefix=None, emails=["MARIA@lutik.ru"]))[0].customer_id == other.id
    with pytest.raises(InvalidData):
        crm.add_contact(other.id, ContactDraft("", phones=["1"]), by="bob")
