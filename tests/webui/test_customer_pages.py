"""Customers and claims in the web UI, through the CRM facade: the card (D1, D4), the
duplicate check (D2), interactions (D3), deals, claims, and the self-service form (C5)."""

from __future__ import annotations

from support.office import as_user, crm_of, register_customer, text


def public_client(app):
    """A visitor without a login whose browser asks for English."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_search_finds_a_customer_by_name_or_inn(app, office):
    customer = register_customer(app)
    client = as_user(app, "ann")
    for query in ("romashka", "7707083893"):
        page = client.get(f"/customers/?q={query}").get_data(as_text=True)
        assert f'href="/customers/{customer.id}"' in page
    assert "Nothing matches" in text(client.get("/customers/?q=vector"))


def test_registering_shows_likely_duplicates_before_saving_and_allows_a_deliberate_second(app, office):
    existing = register_customer(app)
    client = as_user(app, "ann")
    form = {"name": "Romashka", "inn": "7707083893", "kind": "organisation", "phones": "", "emails": ""}
    response = client.post("/customers/new", data=form)
    assert response.status_code == 409
    page = text(response)
    assert "Likely already registered" in page and "Romashka LLC" in page and "7707083893" in page
    assert f'href="/customers/{existing.id}"' in response.get_data(as_text=True)
    assert len(crm_of(app).search_customers("Romashka")) == 1  # nothing saved yet

    response = client.post("/customers/new", data={**form, "deliberate": "yes"})
    assert response.status_code == 302
    assert len(crm_of(app).search_customers("Romashka")) == 2


def test_a_bad_value_is_reported_next_to_its_field(app, office):
    response = as_user(app, "ann").post("/customers/new", data={"name": "", "inn": "123", "kind": "organisation"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-field-error="name"' in html and 'data-field-error="inn"' in html


def test_the_card_shows_details_timeline_and_every_deal_and_claim_with_its_stage(app, office):
    customer = register_customer(app)
    client = as_user(app, "ann")
    client.post(f"/customers/{customer.id}/interactions",
                data={"kind": "call_out", "status": "done", "subject": "Asked about prices", "notes": "call back Friday"})
    response = client.post(f"/customers/{customer.id}/deals", data={"kind": "typical", "title": "Spring order",
                                                                     "amount": "120 000"})
    assert response.status_code == 302
    client.post(f"/customers/{customer.id}/claims", data={"complainant": "Ivan Petrov", "reason": "quality",
                                                          "essence": "Scratched panels"})
    page = text(client.get(f"/customers/{customer.id}"))
    assert "Romashka LLC" in page and "7707083893" in page and "info@romashka.example" in page
    assert "outgoing call · Asked about prices" in page and "call back Friday" in page
    assert "Spring order" in page and "typical sale · in progress" in page
    assert "CL-" in page and "triage" in page
    assert "1 running deal, 0 won, 0 lost, 1 open claim" in page
    office.set_locale("ann", "ru")
    russian = text(client.get(f"/customers/{customer.id}"))
    assert "1 сделка в работе, 0 выиграно, 0 проиграно, 1 открытая претензия" in russian


def test_a_deal_with_bad_input_is_refused_with_the_reason_and_nothing_starts(app, office):
    customer = register_customer(app)
    response = as_user(app, "ann").post(f"/customers/{customer.id}/deals",
                                        data={"kind": "typical", "title": "", "amount": "lots"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-field-error="deal.title"' in html and 'data-field-error="deal.amount"' in html
    assert "No deals or claims yet" in text(response)


def test_a_customer_files_a_claim_without_login_and_an_officer_finds_it_in_the_queue(app, office):
    register_customer(app)
    public = public_client(app)
    assert public.get("/claim").status_code == 200
    response = public.post("/claim", data={"identity": "INFO@romashka.example", "complainant": "Ivan Petrov",
                                           "reason": "damaged", "essence": "Two boxes arrived crushed"})
    assert response.status_code == 200
    number = response.get_data(as_text=True).split('class="claim-number">')[1].split("<")[0]
    assert number.startswith("CL-")
    claim = crm_of(app).claim(int(number.removeprefix("CL-")))
    assert claim.registered_by is None and claim.essence == "Two boxes arrived crushed"
    # The investigation started: its first step waits in the heads' queue, where boss takes it.
    queue = text(as_user(app, "boss").get("/?bucket=queue"))
    assert number in queue and "Triage the claim" in queue


def test_an_unknown_customer_gets_a_clear_message_and_nothing_is_registered(app, office):
    register_customer(app)
    response = public_client(app).post("/claim", data={"identity": "romashka", "complainant": "X",
                                                      "reason": "quality", "essence": "y"})
    assert response.status_code == 422
    assert "could not find a customer" in text(response)
    assert "Triage the claim" not in text(as_user(app, "boss").get("/?bucket=queue"))


def test_the_honeypot_swallows_bots_and_the_rate_limit_stops_floods(app, office):
    register_customer(app)
    public = public_client(app)
    form = {"identity": "info@romashka.example", "complainant": "Bot", "reason": "quality", "essence": "spam"}
    caught = public.post("/claim", data={**form, "website": "http://spam.example"})
    assert caught.status_code == 200 and "claim-number" not in caught.get_data(as_text=True)
    assert "Triage the claim" not in text(as_user(app, "boss").get("/?bucket=queue"))

    statuses = [public.post("/claim", data=form).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert "Too many claims" in text(public.post("/claim", data=form))


def test_a_customer_is_edited_and_keeps_what_the_form_does_not_show(app, office):
    customer = register_customer(app, addresses=[{"kind": "legal", "text": "Moscow, Tverskaya 1"}])
    client = as_user(app, "bob")  # anyone on the staff, as registering
    page = client.get(f"/customers/{customer.id}/edit").get_data(as_text=True)
    assert 'value="Romashka LLC"' in page and "info@romashka.example</textarea>" in page
    response = client.post(f"/customers/{customer.id}/edit", data={
        "name": "Romashka Group", "inn": "7707083893", "kind": "organisation", "partner_role": "supplier",
        "status": "existing", "importance": "A", "relationship_stage": "Regular", "phones": "+7 495 123-45-67",
        "emails": "info@romashka.example\nsales@romashka.example"})
    assert response.status_code == 302
    saved = crm_of(app).customer(customer.id)
    assert (saved.name, saved.partner_role, saved.status, saved.importance) == ("Romashka Group", "supplier",
                                                                                "existing", "A")
    assert saved.phones == ["74951234567"] and saved.emails == ["info@romashka.example", "sales@romashka.example"]
    assert saved.addresses == [{"kind": "legal", "text": "Moscow, Tverskaya 1"}] and saved.curator.username == "ann"
    assert "Saved Romashka Group." in text(client.get(response.headers["Location"]))


def test_a_contact_person_is_added_on_the_card_and_found_by_their_phone(app, office):
    customer = register_customer(app)
    client = as_user(app, "ann")
    response = client.post(f"/customers/{customer.id}/contacts", data={
        "name": "Ivan Petrov", "position": "Buyer", "decision_role": "decision_maker", "phones": "8 916 123-45-67",
        "birthday": "1980-05-17"})
    assert response.status_code == 302
    page = text(client.get(f"/customers/{customer.id}"))
    assert "Ivan Petrov , Buyer decides" in page and "79161234567" in page and "1980-05-17" in page
    assert [c.id for c in crm_of(app).search_customers("+7 916 123 45 67")] == [customer.id]
