"""The REST API (/api/v1): tokens, the UI's authorization rules, work items with their
409s and field errors, instances with history, and the CRM resources."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from support.api import ApiClient, api_as
from support.office import as_user, crm_of, register_customer, start_approval
from webui.api import tokens as token_store
from webui.cli import command_line

EVERYONE = {"ann", "eve", "boss", "dora", "root"}
STAFF = {"ann", "eve", "boss", "root"}


# -- tokens ---------------------------------------------------------------------------------


def test_no_token_or_a_bad_one_is_401_in_json(app, office):
    for client in (ApiClient(app, None), ApiClient(app, "crm_not-a-token"), ApiClient(app, "garbage")):
        response = client.get("/api/v1/me")
        assert response.status_code == 401
        assert response.json["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_session_cookie_does_not_open_the_api(app, office):
    assert as_user(app, "ann").get("/api/v1/me").status_code == 401


def test_a_token_acts_as_its_user_and_only_its_hash_is_stored(app, office):
    issued = token_store.create_token(office, "ann", "website form")
    assert ApiClient(app, issued.secret).get("/api/v1/me").json == {
        "username": "ann", "display_name": "Anna Sales", "roles": ["employee"], "groups": ["sales"],
        "headed_groups": []}
    [stored] = token_store.tokens(office, "ann")
    assert stored.token_hash == token_store.hash_token(issued.secret) and issued.secret not in stored.token_hash
    assert stored.prefix == issued.secret[:12] and stored.last_used_at is not None


def test_revoked_and_expired_tokens_and_inactive_users_are_refused(app, office, clock):
    revoked = token_store.create_token(office, "ann", "old")
    token_store.revoke_token(office, revoked.token.id, by="ann")
    assert ApiClient(app, revoked.secret).get("/api/v1/me").status_code == 401

    expiring = token_store.create_token(office, "ann", "short", expires_at=clock() + timedelta(days=1))
    assert ApiClient(app, expiring.secret).get("/api/v1/me").status_code == 200
    clock.advance(days=2)
    assert ApiClient(app, expiring.secret).get("/api/v1/me").status_code == 401

    from sqlalchemy import update

    from engine.models import User

    eve = token_store.create_token(office, "eve", "eve's")
    with office.transaction() as session:
        session.execute(update(User).where(User.username == "eve").values(active=False))
    assert ApiClient(app, eve.secret).get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tokens_from_the_command_line(office, monkeypatch, database_url):
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", database_url)
    runner = CliRunner()
    made = runner.invoke(command_line(), ["tokens", "create", "ann", "--name", "crm sync", "--days", "30"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("crm_")
    listed = runner.invoke(command_line(), ["tokens", "list", "--user", "ann"])
    assert "crm sync" in listed.output and secret[:12] in listed.output and secret not in listed.output
    token_id = token_store.tokens(office, "ann")[0].id
    revoked = runner.invoke(command_line(), ["tokens", "revoke", str(token_id)])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert token_store.user_id_of_token(office, secret) is None
    unknown = runner.invoke(command_line(), ["tokens", "create", "nobody", "--name", "x"])
    assert unknown.exit_code == 1 and "nobody" in unknown.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_tokens_page_shows_a_new_token_once_and_revokes_only_ones_own(app, office):
    client = as_user(app, "ann")
    page = client.post("/settings/tokens/", data={"name": "phone app", "lifetime": "30"})
    assert page.status_code == 200
    secret = page.get_data(as_text=True).split('class="token-secret">')[1].split("<")[0]
    assert ApiClient(app, secret).get("/api/v1/me").status_code == 200
    listing = client.get("/settings/tokens/").get_data(as_text=True)
    assert "phone app" in listing and secret not in listing

    bobs = token_store.create_token(office, "bob", "bob's")
    client.post(f"/settings/tokens/{bobs.token.id}/revoke")
    assert token_store.user_id_of_token(office, bobs.secret) is not None
    client.post(f"/settings/tokens/{token_store.tokens(office, 'ann')[0].id}/revoke")
    assert ApiClient(app, secret).get("/api/v1/me").status_code == 401
    assert client.post("/settings/tokens/", data={"name": " ", "lifetime": "30"}).status_code == 422


# -- who gets in: the UI's rules ------------------------------------------------------------

# (method, path template) -> who gets in with a token (not 401/403). ann owns the item; boss
# manages ann; eve is outside; dora designs; root administers.
ADMITTED = {
    ("GET", "/api/v1/me"): EVERYONE,
    ("GET", "/api/v1/work-items"): EVERYONE,
    ("GET", "/api/v1/work-items/{item}"): {"ann", "boss", "root"},
    ("POST", "/api/v1/work-items/{item}/claim"): {"ann", "boss", "root"},
    ("POST", "/api/v1/work-items/{item}/complete"): {"ann", "boss", "root"},
    ("POST", "/api/v1/work-items/{item}/reassign"): {"boss", "root"},
    ("POST", "/api/v1/instances"): STAFF,
    ("GET", "/api/v1/instances/{instance}"): {"ann", "boss", "dora", "root"},
    ("GET", "/api/v1/customers"): STAFF,
    ("POST", "/api/v1/customers"): STAFF,
    ("POST", "/api/v1/customers/duplicates"): STAFF,
    ("GET", "/api/v1/customers/{customer}"): STAFF,
    ("GET", "/api/v1/customers/{customer}/interactions"): STAFF,
    ("POST", "/api/v1/customers/{customer}/interactions"): STAFF,
    ("POST", "/api/v1/customers/{customer}/deals"): STAFF,
    ("POST", "/api/v1/customers/{customer}/claims"): STAFF,
    ("GET", "/api/v1/deals/{deal}"): STAFF,
    ("GET", "/api/v1/claims/{claim}"): STAFF,
}


def test_the_table_names_every_api_operation(app):
    from webui.api import api

    declared = {(op.method, "/api/v1" + op.rule.replace("<int:item_id>", "{item}")
                 .replace("<int:instance_id>", "{instance}").replace("<int:customer_id>", "{customer}")
                 .replace("<int:deal_id>", "{deal}").replace("<int:claim_id>", "{claim}"))
                for op in api.operations}
    assert declared == set(ADMITTED)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_operation_admits_exactly_the_roles_the_ui_does(app, office):
    instance, item = start_approval(office)  # assigned to ann
    customer = register_customer(app)
    deal = crm_of(app).start_deal("project", customer.id, "ann", "Fit-out", "ann")
    from processes.crm import ClaimDraft

    claim = crm_of(app).register_claim(ClaimDraft(customer.id, "Ivan", "Wet boxes", "damaged"), "ann")
    ids = {"item": item.id, "instance": instance.id, "customer": customer.id, "deal": deal.id, "claim": claim.id}
    failures = []
    for who in sorted(EVERYONE):
        client = api_as(app, office, who)
        for (method, template), admitted in sorted(ADMITTED.items()):
            url = template.format(**ids)
            # Harmless bodies: a stale version, nobody to reassign to, nothing valid enough to register.
            body = {"expected_version": 99} if url.endswith("/complete") else (
                {"to_user": "nobody"} if url.endswith("/reassign") else {})
            response = client.get(url) if method == "GET" else client.post(url, json=body)
            got_in = response.status_code not in (401, 403)
            if got_in != (who in admitted):
                failures.append(f"{who:5} {method:4} {url}: {response.status_code} {response.json}")
    assert not failures, "\n".join(failures)
    assert office.work_item(item.id).status == "open"


def test_unknown_paths_methods_and_bodies_are_json_errors(ann):
    assert ann.get("/api/v1/nowhere").json["code"] == "not_found"
    wrong_method = ann.client.delete("/api/v1/me", headers=ann.headers)
    assert wrong_method.status_code == 405 and wrong_method.json["code"] == "method_not_allowed"
    not_json = ann.client.post("/api/v1/instances", data="process_key=x", headers=ann.headers)
    assert not_json.status_code == 415 and not_json.json["code"] == "unsupported_media_type"
    broken = ann.client.post("/api/v1/instances", data="{", headers={**ann.headers, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json["code"] == "bad_request"
    huge_id = ann.get(f"/api/v1/work-items/{2**40}")
    assert huge_id.status_code == 404 and huge_id.json["code"] == "not_found"


# -- work items -----------------------------------------------------------------------------


def test_my_items_and_my_groups_queue_with_filters_and_paging(app, office, ann, clock):
    for n in range(5):
        start_approval(office, key=f"DEAL-{n}")
        clock.advance(minutes=1)
    items = ann.get("/api/v1/work-items?scope=mine&limit=2").json
    assert [i["name"] for i in items["items"]] == ["Request discount"] * 2 and items["next_offset"] == 2
    rest = ann.get("/api/v1/work-items?scope=mine&limit=2&offset=4").json
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    assert [i["due_at"] for i in items["items"]] == sorted(i["due_at"] for i in items["items"])

    # boss's group "heads" gets the review once ann has done the request.
    first = items["items"][0]
    ann.post(f"/api/v1/work-items/{first['id']}/complete", json={"expected_version": first["version"],
                                                                  "data": {"discount": 5}})
    boss = api_as(app, office, "boss")
    queue = boss.get("/api/v1/work-items?scope=queue").json["items"]
    assert [(i["name"], i["assignee"], i["candidate_groups"]) for i in queue] == [("Review discount", None, ["heads"])]
    assert boss.get("/api/v1/work-items?scope=queue&group=sales").json["items"] == []
    assert boss.get(f"/api/v1/work-items?instance_id={first['instance_id']}").json["items"] == queue
    # The manager's department: ann's four open requests and the heads' review.
    team = boss.get("/api/v1/work-items?scope=team").json["items"]
    assert sorted(i["name"] for i in team) == ["Request discount"] * 4
    clock.advance(days=3)
    assert len(ann.get("/api/v1/work-items?overdue=true").json["items"]) == 4
    assert ann.get("/api/v1/work-items?overdue=false").json["items"] == []
    assert ann.get("/api/v1/work-items?scope=team").status_code == 403

    bad = ann.get("/api/v1/work-items?limit=0&scope=everything&overdue=maybe")
    assert bad.status_code == 422
    assert set(bad.json["fields"]) == {"limit", "scope", "overdue"}


def test_claim_then_complete_and_the_second_completion_is_a_clean_409(app, office, ann, boss):
    instance, item = start_approval(office)
    detail = ann.get(f"/api/v1/work-items/{item.id}").json
    assert [f["id"] for f in detail["form"]] == ["discount", "reason", "valid_until", "urgent", "channel"]
    assert detail["form"][0]["required"] is True and detail["version"] == 1

    invalid = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1,
                                                                        "data": {"discount": 99, "colour": "red"}})
    assert invalid.status_code == 422 and invalid.json["code"] == "invalid"
    assert invalid.json["fields"] == {"colour": "is not a field of this step's form", "discount": "must be at most 50"}
    assert invalid.json["reason"] == "invalid_form_data" and invalid.json["params"]["task"] == "Request discount"
    assert invalid.json["field_reasons"] == {"colour": {"reason": "unknown_field", "params": {}},
                                             "discount": {"reason": "too_large", "params": {"max": "50"}}}
    missing = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"data": {}})
    assert missing.status_code == 422 and missing.json["fields"] == {"expected_version": "is required"}

    done = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1, "data": {"discount": 10}})
    assert done.status_code == 200, done.json
    assert done.json["work_item"]["status"] == "completed" and done.json["work_item"]["version"] == 2
    [review] = done.json["next_items"]
    assert review["name"] == "Review discount" and review["assignee"] is None

    again = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1, "data": {"discount": 10}})
    assert again.status_code == 409 and again.json["code"] == "work_item_closed"

    claimed = boss.post(f"/api/v1/work-items/{review['id']}/claim")
    assert claimed.status_code == 200 and claimed.json["assignee"] == "boss" and claimed.json["version"] == 2
    stale = boss.post(f"/api/v1/work-items/{review['id']}/complete", json={"expected_version": 1,
                                                                             "data": {"approved": True}})
    assert stale.status_code == 409
    assert stale.json["code"] == "stale_work_item"
    assert (stale.json["expected_version"], stale.json["current_version"]) == (1, 2)
    assert "changed since you opened it" in stale.json["message"]
    root = api_as(app, office, "root")
    assert root.post(f"/api/v1/work-items/{review['id']}/claim").json["code"] == "work_item_closed"


def test_a_manager_reassigns_within_the_team_only(app, office, boss):
    instance, item = start_approval(office)
    moved = boss.post(f"/api/v1/work-items/{item.id}/reassign", json={"to_user": "bob", "reason": "ann is ill"})
    assert moved.status_code == 200 and moved.json["assignee"] == "bob"
    outsider = boss.post(f"/api/v1/work-items/{item.id}/reassign", json={"to_user": "sue"})
    assert outsider.status_code == 422 and outsider.json["fields"] == {"to_user": "is not someone in your team"}
    carl = api_as(app, office, "carl")
    assert carl.post(f"/api/v1/work-items/{item.id}/reassign", json={"to_user": "sue"}).status_code == 403
    history = office.instance(instance.id).history
    assert [e.detail for e in history if e.type == "work_item_reassigned"] == [
        {"from": "ann", "to": "bob", "reason": "ann is ill"}]


def test_start_an_instance_and_read_it_with_its_history(app, office, ann):
    started = ann.post("/api/v1/instances", json={"process_key": "approval", "data": {"curator": "ann"},
                                                  "business_key": "WEB-17"})
    assert started.status_code == 201, started.json
    body = started.json
    assert started.headers["Location"].endswith(f"/api/v1/instances/{body['id']}")
    assert (body["process_key"], body["business_key"], body["status"], body["started_by"]) == (
        "approval", "WEB-17", "running", "ann")
    assert [e["type"] for e in body["history"]][:1] == ["instance_started"]
    assert body["open_items"][0]["assignee"] == "ann" and body["data"]["curator"] == "ann"
    assert ann.get(f"/api/v1/instances/{body['id']}").json["history"] == body["history"]
    eve = api_as(app, office, "eve")
    assert eve.get(f"/api/v1/instances/{body['id']}").status_code == 403

    unknown = ann.post("/api/v1/instances", json={"process_key": "nope"})
    assert unknown.status_code == 422 and "process_key" in unknown.json["fields"]
    bad_data = ann.post("/api/v1/instances", json={"process_key": "approval", "data": {"not a name": 1}})
    assert bad_data.status_code == 422 and "data" in bad_data.json["fields"]
    crm_process = ann.post("/api/v1/instances", json={"process_key": "claim_investigation"})
    assert crm_process.status_code == 422 and "/claims" in crm_process.json["fields"]["process_key"]
    assert ann.get("/api/v1/instances/999").status_code == 404


# -- customers, deals, claims, interactions ---------------------------------------------------


def test_refusals_come_in_the_token_users_language_with_their_code_and_parameters(app, office, ann):
    _, item = start_approval(office)
    office.set_locale("ann", "ru")
    invalid = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1,
                                                                        "data": {"discount": 99}})
    assert invalid.status_code == 422 and invalid.json["code"] == "invalid"
    assert invalid.json["message"] == "В форме «Request discount» есть неверные значения: discount: не больше 50"
    assert invalid.json["fields"] == {"discount": "не больше 50"}
    assert invalid.json["field_reasons"] == {"discount": {"reason": "too_large", "params": {"max": "50"}}}

    missing = ann.get("/api/v1/customers/999999")
    assert missing.status_code == 404 and missing.json["code"] == "not_found"
    assert missing.json["reason"] == "customer_not_found" and missing.json["params"] == {"id": 999999}
    assert missing.json["message"] == "Клиента 999999 нет."

    office.complete(item.id, {"discount": 10}, "ann")
    closed = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 2,
                                                                       "data": {"discount": 10}})
    assert closed.status_code == 409 and closed.json["code"] == "work_item_closed"
    assert closed.json["reason"] == "work_item_closed" and closed.json["item_status"] == "completed"
    assert closed.json["message"] == f"Задача {item.id} уже выполнена пользователем ann."


def test_register_a_customer_with_the_duplicate_check(ann):
    draft = {"name": "Romashka LLC", "inn": "7707083893", "emails": ["info@romashka.example"],
             "contacts": [{"name": "Ivan Petrov", "position": "CEO", "phones": ["+7 495 123-45-67"]}]}
    first = ann.post("/api/v1/customers", json=draft)
    assert first.status_code == 201, first.json
    customer = first.json["customer"]
    assert customer["curator"] == "ann" and customer["contacts"][0]["phones"] == ["74951234567"]

    check = ann.post("/api/v1/customers/duplicates", json={"name": "Romashka", "inn": "7707083893"})
    assert [c["customer_id"] for c in check.json["candidates"]] == [customer["id"]]
    again = ann.post("/api/v1/customers", json={**draft, "name": "Romashka"})
    assert again.status_code == 409 and again.json["code"] == "duplicate_customer"
    assert "same INN 7707083893" in again.json["candidates"][0]["reasons"]
    assert {"kind": "inn", "value": "7707083893"} in again.json["candidates"][0]["keys"]
    assert again.json["message"].startswith("A likely duplicate is already registered: #")
    deliberate = ann.post("/api/v1/customers", json={**draft, "name": "Romashka", "allow_duplicates": True})
    assert deliberate.status_code == 201 and deliberate.json["duplicates"]

    invalid = ann.post("/api/v1/customers", json={"name": "", "inn": "123", "kind": "robot",
                                                  "contacts": [{"name": ""}], "extra": 1})
    assert invalid.status_code == 422
    assert set(invalid.json["fields"]) == {"name", "kind", "contacts[1].name", "extra"}
    bad_inn = ann.post("/api/v1/customers", json={"name": "Lutik", "inn": "123"})
    assert bad_inn.status_code == 422 and set(bad_inn.json["fields"]) == {"inn"}

    found = ann.get("/api/v1/customers?q=7707083893").json["items"]
    assert {c["name"] for c in found} == {"Romashka LLC", "Romashka"}
    assert ann.get("/api/v1/customers").json["fields"] == {"q": "is required"}


def test_deals_claims_and_interactions_of_a_customer(app, office, ann):
    customer = register_customer(app)
    deal = ann.post(f"/api/v1/customers/{customer.id}/deals", json={"kind": "typical", "title": "Boxes",
                                                                    "amount": 150000.5})
    assert deal.status_code == 201, deal.json
    assert (deal.json["number"], deal.json["amount"], deal.json["current_stage"]) == (
        f"D-{deal.json['id']:06d}", "150000.50", "first_contact")
    assert ann.get(f"/api/v1/deals/{deal.json['id']}").json == deal.json
    assert ann.get(f"/api/v1/instances/{deal.json['instance_id']}").json["business_key"] == deal.json["number"]
    other = ann.post(f"/api/v1/customers/{customer.id}/deals", json={"kind": "typical", "title": "x",
                                                                     "curator": "bob"})
    assert other.status_code == 403

    claim = ann.post(f"/api/v1/customers/{customer.id}/claims", json={
        "complainant": "Ivan", "essence": "The boxes arrived wet", "reason": "damaged", "deal_id": deal.json["id"]})
    assert claim.status_code == 201, claim.json
    assert claim.json["number"].startswith("CL-") and claim.json["status"] == "triage"
    assert ann.get(f"/api/v1/claims/{claim.json['id']}").json["essence"] == "The boxes arrived wet"
    bad_claim = ann.post(f"/api/v1/customers/{customer.id}/claims", json={
        "complainant": "Ivan", "essence": "x", "reason": "damaged", "guilty_department": "nowhere"})
    assert bad_claim.status_code == 422 and set(bad_claim.json["fields"]) == {"guilty_department"}

    logged = ann.post(f"/api/v1/customers/{customer.id}/interactions", json={
        "kind": "call_out", "subject": "Agreed the delivery date", "at": "2026-11-20T10:00:00+03:00",
        "deal_id": deal.json["id"]})
    assert logged.status_code == 201, logged.json
    assert logged.json["at"] == "2026-11-20T07:00:00+00:00" and logged.json["employee"] == "ann"
    timeline = ann.get(f"/api/v1/customers/{customer.id}/interactions?deal_id={deal.json['id']}").json["items"]
    assert [i["subject"] for i in timeline] == ["Agreed the delivery date"]
    bad_time = ann.post(f"/api/v1/customers/{customer.id}/interactions", json={
        "kind": "call", "subject": "x", "at": "2026-11-20 10:00"})
    assert bad_time.status_code == 422 and set(bad_time.json["fields"]) == {"kind", "at"}

    card = ann.get(f"/api/v1/customers/{customer.id}").json
    assert {p["kind"] for p in card["processes"]} == {"typical", "claim"}
    assert "1 running deal," in card["summary"]
    assert ann.get("/api/v1/customers/999/interactions").status_code == 404


def test_bodies_and_queries_are_checked_against_the_schema_with_a_message_per_field(app, office, ann):
    customer = register_customer(app)
    bad = ann.post("/api/v1/customers", json={
        "name": "Nul\x00Name", "kind": None, "importance": "Z", "phones": ["+7 495 000-00-01"] * 11,
        "category": "c" * 101, "allow_duplicates": "yes",
        "contacts": [{"name": "Ivan", "birthday": "2026-02-30", "colour": "red"}, {"birthday": None}, "Petrov"]})
    assert bad.status_code == 422 and bad.json["code"] == "invalid"
    assert bad.json["fields"] == {
        "name": "must not contain NUL characters", "kind": "must not be null", "importance": "must be one of A, B, C",
        "phones": "must have at most 10 entries", "category": "must be at most 100 characters",
        "allow_duplicates": "must be true or false", "contacts[1].birthday": "must be a date like 2026-11-23",
        "contacts[1].colour": "is not a known field", "contacts[2].name": "is required",
        "contacts[3]": "must be a JSON object"}
    assert ann.post("/api/v1/customers", json=["a list"]).json["fields"] == {"body": "must be a JSON object"}

    # Moments need their offset and a real day; whole numbers may be written 5.0; free-form data holds no NUL.
    url = f"/api/v1/customers/{customer.id}/interactions"
    for moment in ("2026-11-20T10:00:00", "2026-11-20 10:00", "2026-02-30T10:00:00+03:00", "2026-11-20T25:00:00Z"):
        refused = ann.post(url, json={"kind": "call_out", "subject": "x", "at": moment})
        assert refused.json["fields"] == {"at": "must be a date and time with its offset, like 2026-11-23T09:00:00+03:00"}
    logged = ann.post(url, json={"kind": "call_out", "subject": "x", "at": "2026-11-20T10:00:00.1234567Z",
                                 "contact_person_id": None})
    assert logged.status_code == 201 and logged.json["at"] == "2026-11-20T10:00:00.123456+00:00"
    instance = ann.post("/api/v1/instances", json={"process_key": "approval", "data": {"curator": "ann",
                                                                                       "notes": ["ok", "bad\x00"]}})
    assert instance.json["fields"] == {"data.notes[2]": "must not contain NUL characters"}
    _, item = start_approval(office, key="DEAL-float")
    done = ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1.0, "data": {"discount": 5}})
    assert done.status_code == 200, done.json
    assert ann.post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1.5, "data": {}}) \
        .json["fields"] == {"expected_version": "must be a whole number"}
    assert ann.get("/api/v1/work-items?limit=201&offset=-1&status=open").json["fields"] == {
        "limit": "must be at most 200", "offset": "must be at least 0"}
