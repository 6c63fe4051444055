"""The deal page (S1-S4: plan against fact, every stage move, the tasks of a project deal)
and the claim page (C1-C4: the claim, its investigation plan, its files)."""

from __future__ import annotations

from datetime import timedelta

from processes.crm import ClaimDraft
from support.office import as_user, crm_of, register_customer, text


def start_typical(app, customer, title="Spring order"):
    return crm_of(app).start_deal("typical", customer.id, "ann", title, "ann", amount="120000")


def test_the_deal_page_shows_the_plan_the_moves_and_the_open_step(app, office, clock):
    customer = register_customer(app)
    deal = start_typical(app, customer)
    clock.advance(days=4)
    page = text(as_user(app, "bob").get(f"/deals/{deal.id}"))
    assert f"{deal.number} Spring order" in page and "Romashka LLC" in page
    assert "typical sale" in page and "First contact" in page and "Anna Sales" in page
    assert "Stage plan" in page and "days behind" in page  # first contact is planned for 2 days
    assert "1 move" in page and "start" in page
    assert "Open steps" in page


def test_the_curator_changes_the_plan_and_a_bad_date_is_reported(app, office, clock):
    deal = start_typical(app, register_customer(app))
    client = as_user(app, "ann")
    later = (clock.now + timedelta(days=30)).date().isoformat()
    response = client.post(f"/deals/{deal.id}/plan", data={"plan-contract": later})
    assert response.status_code == 302
    assert {row.stage: row.planned_end.isoformat() for row in crm_of(app).stage_plan(deal.id)}["contract"] == later

    response = client.post(f"/deals/{deal.id}/plan", data={"plan-contract": "next Tuesday"})
    assert response.status_code == 422
    assert 'data-field-error="plan.contract"' in response.get_data(as_text=True)
    assert "next Tuesday is not a date" in text(response)


def test_only_the_curator_or_her_manager_changes_a_deal(app, office, clock):
    deal = start_typical(app, register_customer(app))
    later = (clock.now + timedelta(days=30)).date().isoformat()
    assert as_user(app, "eve").post(f"/deals/{deal.id}/plan", data={"plan-contract": later}).status_code == 403
    assert as_user(app, "boss").post(f"/deals/{deal.id}/plan", data={"plan-contract": later}).status_code == 302


def test_a_project_deal_gets_tasks_in_the_owners_inbox_and_is_closed_by_hand(app, office, clock):
    customer = register_customer(app)
    deal = crm_of(app).start_deal("project", customer.id, "ann", "Warehouse fit-out", "ann")
    client = as_user(app, "ann")
    due = (clock.now + timedelta(days=3)).date().isoformat()
    response = client.post(f"/deals/{deal.id}/tasks", data={"title": "Agree the layout", "owner": "bob",
                                                             "due_on": due, "due_time": "11:00"})
    assert response.status_code == 302
    [item] = office.work_items(assignee="bob")
    assert item.due_at.isoformat() == f"{due}T11:00:00+00:00"  # the user's time zone is UTC here

    response = client.post(f"/deals/{deal.id}/tasks", data={"title": "", "owner": "nobody", "due_on": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for field in ("title", "owner", "due_on"):  # the deadline is typed as a date (and a time)
        assert f'data-field-error="task.{field}"' in html

    response = client.post(f"/deals/{deal.id}/close", data={"outcome": "won"})
    assert response.status_code == 422 and "still open" in text(response)
    office.complete(item.id, {"result": "Agreed"}, "bob", expected_version=item.version)
    response = client.post(f"/deals/{deal.id}/close", data={"outcome": "lost", "lost_reason": "competitor"})
    assert response.status_code == 302
    page = text(client.get(f"/deals/{deal.id}"))
    assert "lost" in page and "Chose a competitor" in page and "Agree the layout" in page


def test_the_claim_page_shows_the_claim_and_its_files_download_safely(app, office):
    customer = register_customer(app)
    claim = crm_of(app).register_claim(ClaimDraft(
        customer_id=customer.id, complainant="Ivan Petrov", essence="Scratched panels", reason="quality",
        attachments=[("фото <1>.html", "text/html", b"<script>alert(1)</script>")]), "ann")
    client = as_user(app, "bob")
    response = client.get(f"/claims/{claim.id}")
    page = text(response)
    assert claim.number in page and "Ivan Petrov" in page and "Scratched panels" in page and "triage" in page
    assert "фото &lt;1&gt;.html" in response.get_data(as_text=True)  # escaped, as every customer's text

    attachment = claim.attachments[0]
    response = client.get(f"/claims/{claim.id}/attachments/{attachment.id}")
    assert response.status_code == 200 and response.data == b"<script>alert(1)</script>"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/claims/{claim.id}/attachments/{attachment.id + 1}").status_code == 404


def test_the_customer_card_links_every_deal_and_claim_to_its_page(app, office):
    customer = register_customer(app)
    deal = start_typical(app, customer)
    html = as_user(app, "ann").get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f'href="/deals/{deal.id}"' in html
    assert as_user(app, "ann").get("/deals/999999").status_code == 404
