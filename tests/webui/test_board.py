"""The manager's side: the overdue board (M1), reassigning work, team workload."""

from __future__ import annotations

import re

from support.office import GOOD_REQUEST, as_user, start_approval, text


def overdue_items(office, clock, *curators):
    items = [start_approval(office, curator=c, key=f"DEAL-{n} {c}")[1] for n, c in enumerate(curators, 1)]
    clock.advance(days=3)  # due after 2 days: Thursday 09:00, one working day late
    return items


def test_the_board_shows_my_departments_late_work_by_stage_and_by_employee(app, office, clock):
    overdue_items(office, clock, "ann", "bob", "sue")
    board = as_user(app, "boss")
    page = text(board.get("/board/"))
    assert "2 overdue" in page
    assert "DEAL-1 ann" in page and "DEAL-2 bob" in page
    assert "DEAL-3 sue" not in page  # sue is carl's
    assert "Negotiation 2" in page  # grouped by stage
    assert "1 working day late" in page
    by_employee = text(board.get("/board/?by=employee"))
    assert "Anna Sales 1" in by_employee and "Bob Sales 1" in by_employee
    assert "DEAL-3 sue" in text(as_user(app, "carl").get("/board/"))
    assert "3 overdue" in text(as_user(app, "root").get("/board/"))


def test_items_due_within_a_working_day_are_at_risk_on_the_board(app, office, clock):
    start_approval(office, curator="ann")
    clock.advance(days=1, hours=12)  # due tomorrow 09:00
    page = text(as_user(app, "boss").get("/board/"))
    assert "0 overdue" in page and "1 at risk" in page


def test_reassigning_a_selection_asks_for_confirmation_then_records_it(app, office, clock):
    first, second, _ = overdue_items(office, clock, "ann", "ann", "bob")
    boss = as_user(app, "boss")
    form = {"item_id": [str(first.id), str(second.id)], "to_user": "bob", "reason": "ann is ill"}

    confirm = boss.post("/board/reassign", data=form)
    assert confirm.status_code == 200
    assert "2 items go to Bob Sales" in text(confirm)
    assert office.work_item(first.id).assignee.username == "ann"  # nothing moved yet

    done = boss.post("/board/reassign", data={**form, "confirmed": "yes"})
    assert done.status_code == 302
    assert "Reassigned 2 items to Bob Sales" in text(boss.get("/board/"))
    assert office.work_item(first.id).assignee.username == "bob"
    assert office.work_item(second.id).assignee.username == "bob"
    [event] = [e for e in office.instance(first.instance_id).history if e.type == "work_item_reassigned"]
    assert (event.actor, event.detail) == ("boss", {"from": "ann", "to": "bob", "reason": "ann is ill"})
    # The new owner sees it in their inbox.
    assert "DEAL-1 ann" in text(as_user(app, "bob").get("/"))


def test_one_item_can_be_reassigned_from_its_row_choosing_the_receiver_on_confirmation(app, office, clock):
    item, _ = overdue_items(office, clock, "ann", "bob")
    boss = as_user(app, "boss")
    confirm = boss.post("/board/reassign", data={"only_item": str(item.id), "item_id": "999"})
    assert confirm.status_code == 200
    assert re.search(r'<select [^>]*name="to_user"', confirm.get_data(as_text=True))
    assert "1 item will move" in text(confirm)
    boss.post("/board/reassign", data={"item_id": str(item.id), "to_user": "bob", "confirmed": "yes"})
    assert office.work_item(item.id).assignee.username == "bob"


def test_all_work_of_a_leaving_employee_moves_in_one_click_after_confirmation(app, office, clock):
    items = overdue_items(office, clock, "ann", "ann", "ann", "bob")
    start_approval(office, curator="ann", key="NOT-LATE")  # not overdue: moves too
    boss = as_user(app, "boss")
    assert "4 open items will move" in text(boss.get("/board/employees/ann/handover"))
    confirm = boss.post("/board/reassign", data={"from_user": "ann", "to_user": "bob", "reason": "left"})
    assert "All 4 open items of Anna Sales go to Bob Sales" in text(confirm)
    boss.post("/board/reassign", data={"from_user": "ann", "to_user": "bob", "reason": "left", "confirmed": "yes"})
    assert office.work_items(assignee="ann") == []
    assert len(office.work_items(assignee="bob")) == 5
    assert items[3].assignee.username == "bob"


def test_a_manager_cannot_touch_another_departments_work(app, office, clock):
    _, sues = overdue_items(office, clock, "ann", "sue")
    boss = as_user(app, "boss")
    boss.post("/board/reassign", data={"item_id": str(sues.id), "to_user": "bob", "confirmed": "yes"})
    assert office.work_item(sues.id).assignee.username == "sue"
    assert boss.get("/board/employees/sue/handover").status_code == 403
    response = boss.post("/board/reassign", data={"from_user": "sue", "to_user": "bob", "confirmed": "yes"})
    assert response.status_code == 403
    # Nor hand work to someone outside their team.
    [anns] = office.work_items(assignee="ann")
    boss.post("/board/reassign", data={"item_id": str(anns.id), "to_user": "eve", "confirmed": "yes"})
    assert office.work_item(anns.id).assignee.username == "ann"


def test_team_workload_counts_open_overdue_and_recently_done_per_person(app, office, clock):
    overdue_items(office, clock, "ann", "ann", "bob")
    start_approval(office, curator="bob", key="FRESH")
    page = as_user(app, "boss").get("/board/team").get_data(as_text=True)
    ann_row = page.split('data-user="ann"')[1].split("</tr>")[0]
    bob_row = page.split('data-user="bob"')[1].split("</tr>")[0]
    assert counts(ann_row) == {"open": "2", "overdue": "2", "at_risk": "0", "done_week": "0"}
    assert counts(bob_row) == {"open": "2", "overdue": "1", "at_risk": "0", "done_week": "0"}
    assert "Carl" not in text(as_user(app, "boss").get("/board/team"))


def counts(row: str) -> dict[str, str]:
    return {name: value.strip() for name, value in re.findall(r'data-col="(\w+)">([\d\s]+)', row)}


def test_completed_work_counts_for_the_week(app, office, clock):
    _, item = start_approval(office, curator="bob")
    office.complete(item.id, GOOD_REQUEST, "bob")
    page = as_user(app, "boss").get("/board/team").get_data(as_text=True)
    assert counts(page.split('data-user="bob"')[1].split("</tr>")[0])["done_week"] == "1"
