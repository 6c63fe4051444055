"""Every route, as every role and anonymous: who gets in.

"Gets in" means the view ran: not sent to the login page, not 401/403. The table below
must name every route of the app, so a new route cannot ship without deciding who may
use it."""

from __future__ import annotations

import pytest

from processes.crm import ClaimDraft
from support.office import as_user, crm_of, register_customer, start_approval

EVERYONE = {"anonymous", "ann", "eve", "boss", "dora", "root"}
SIGNED_IN = EVERYONE - {"anonymous"}
MANAGERS = {"boss", "root"}
DESIGNERS = {"dora", "root"}
STAFF = {"ann", "eve", "boss", "root"}  # employees and managers: the customer base is the company's

# (method, rule) -> who gets in. ann owns the item; boss manages ann; eve is outside.
ADMITTED = {
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/logout"): SIGNED_IN,
    ("POST", "/settings/language"): SIGNED_IN,
    ("GET", "/"): SIGNED_IN,
    ("GET", "/items/<int:item_id>"): {"ann", "boss", "root"},
    ("POST", "/items/<int:item_id>"): {"ann", "boss", "root"},
    ("POST", "/items/<int:item_id>/claim"): {"ann", "boss", "root"},
    ("GET", "/instances/<int:instance_id>"): {"ann", "boss", "dora", "root"},
    ("GET", "/board/"): MANAGERS,
    ("GET", "/board/team"): MANAGERS,
    ("POST", "/board/reassign"): MANAGERS,
    ("GET", "/board/employees/<username>/handover"): MANAGERS,
    # Analytics: managers (a director is one) for their team's figures, admins for everyone's.
    **{("GET", f"/analytics/{page}"): MANAGERS for page in (
        "", "funnel", "funnel.csv", "plan", "plan.csv", "claims", "claims.csv", "managers", "managers.csv",
        "heatmap", "heatmap.csv")},
    ("GET", "/processes/"): DESIGNERS,
    ("GET", "/processes/upload"): DESIGNERS,
    ("POST", "/processes/upload"): DESIGNERS,
    ("GET", "/processes/<key>/v<int:version>"): DESIGNERS,
    ("GET", "/processes/<key>/v<int:version>/bpmn"): DESIGNERS,
    ("GET", "/processes/<key>/v<int:version>/modeler"): DESIGNERS,
    ("POST", "/processes/<key>/v<int:version>/modeler"): DESIGNERS,
    ("GET", "/customers/"): STAFF,
    ("GET", "/customers/new"): STAFF,
    ("POST", "/customers/new"): STAFF,
    ("GET", "/customers/<int:customer_id>"): STAFF,
    ("GET", "/customers/<int:customer_id>/edit"): STAFF,
    ("POST", "/customers/<int:customer_id>/edit"): STAFF,
    ("POST", "/customers/<int:customer_id>/contacts"): STAFF,
    ("POST", "/customers/<int:customer_id>/interactions"): STAFF,
    ("POST", "/customers/<int:customer_id>/deals"): STAFF,
    ("POST", "/customers/<int:customer_id>/claims"): STAFF,
    ("GET", "/deals/<int:deal_id>"): STAFF,
    # Changing a deal: its curator (ann), whoever manages her, admins.
    ("POST", "/deals/<int:deal_id>/plan"): {"ann", "boss", "root"},
    ("POST", "/deals/<int:deal_id>/tasks"): {"ann", "boss", "root"},
    ("POST", "/deals/<int:deal_id>/close"): {"ann", "boss", "root"},
    ("GET", "/claims/<int:claim_id>"): STAFF,
    ("GET", "/claims/<int:claim_id>/attachments/<int:attachment_id>"): STAFF,
    ("GET", "/claim"): EVERYONE,
    ("POST", "/claim"): EVERYONE,
    ("GET", "/notifications/"): SIGNED_IN,
    ("POST", "/notifications/read"): SIGNED_IN,
    ("GET", "/settings/tokens/"): SIGNED_IN,
    ("POST", "/settings/tokens/"): SIGNED_IN,
    ("POST", "/settings/tokens/<int:token_id>/revoke"): SIGNED_IN,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,  # CRMFLOW_METRICS_TOKEN would close it (tests/test_ops.py)
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    # The REST API takes a bearer token, never the session cookie: signed in or not, nobody gets
    # in this way. Who gets in with a token is tests/api/test_api.py's table.
    **{("GET" if name.startswith("GET ") else "POST", name.split(" ", 1)[1]): set() for name in (
        "GET /api/v1/me", "GET /api/v1/work-items", "GET /api/v1/work-items/<int:item_id>",
        "POST /api/v1/work-items/<int:item_id>/claim", "POST /api/v1/work-items/<int:item_id>/complete",
        "POST /api/v1/work-items/<int:item_id>/reassign", "POST /api/v1/instances",
        "GET /api/v1/instances/<int:instance_id>", "GET /api/v1/customers", "POST /api/v1/customers",
        "POST /api/v1/customers/duplicates", "GET /api/v1/customers/<int:customer_id>",
        "GET /api/v1/customers/<int:customer_id>/interactions",
        "POST /api/v1/customers/<int:customer_id>/interactions",
        "POST /api/v1/customers/<int:customer_id>/deals", "POST /api/v1/customers/<int:customer_id>/claims",
        "GET /api/v1/deals/<int:deal_id>", "GET /api/v1/claims/<int:claim_id>")},
    ("GET", "/vendor/<package>/<path:filename>"): EVERYONE,
    ("GET", "/static/<path:filename>"): EVERYONE,
}


def routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_table_names_every_route(app):
    assert routes(app) == set(ADMITTED)


def concrete(rule: str, item_id: int, instance_id: int, customer_id: int, deal_id: int, claim_id: int,
             attachment_id: int) -> str:
    return (rule.replace("<int:customer_id>", str(customer_id)).replace("<int:item_id>", str(item_id))
            .replace("<int:instance_id>", str(instance_id)).replace("<int:deal_id>", str(deal_id))
            .replace("<int:claim_id>", str(claim_id)).replace("<int:attachment_id>", str(attachment_id))
            .replace("<int:token_id>", "1")
            .replace("<username>", "ann").replace("<key>", "approval").replace("<int:version>", "1")
            .replace("<package>/<path:filename>", "bpmn-js/assets/bpmn-js.css")
            .replace("<path:filename>", "app.css"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_route_admits_exactly_the_roles_it_should(app, office):
    instance, item = start_approval(office)  # assigned to ann
    customer = register_customer(app)
    deal = crm_of(app).start_deal("project", customer.id, "ann", "Warehouse fit-out", "ann")
    claim = crm_of(app).register_claim(ClaimDraft(customer_id=customer.id, complainant="Ivan", essence="Wet boxes",
                                                  reason="damaged", attachments=[("photo.jpg", "image/jpeg", b"JPEG")]),
                                       "ann")
    ids = dict(customer_id=customer.id, deal_id=deal.id, claim_id=claim.id, attachment_id=claim.attachments[0].id)
    failures = []
    for who in sorted(EVERYONE):
        client = app.test_client() if who == "anonymous" else as_user(app, who)
        # Signing out ends the session the other requests need: it goes last.
        for method, rule in sorted(ADMITTED, key=lambda route: (route[1] == "/logout", route)):
            url = concrete(rule, item.id, instance.id, **ids)
            # Harmless bodies: nothing valid enough to change anything.
            response = client.open(url, method=method, data={"version": "0", "locale": "xx"})
            to_login = response.status_code == 302 and "/login?next=" in response.headers.get("Location", "")
            admitted = response.status_code not in (401, 403) and not to_login
            if rule == "/login" and method == "POST":
                admitted = response.status_code != 403
            if admitted != (who in ADMITTED[(method, rule)]):
                failures.append(f"{who:9} {method:4} {url}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert office.work_item(item.id).status == "open"
    assert office.work_item(item.id).assignee.username == "ann"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_deactivated_user_is_signed_out(app, office):
    from sqlalchemy.orm import Session

    from engine.db import WRITE
    from engine.models import User

    client = as_user(app, "eve")
    assert client.get("/").status_code == 200
    with Session(office.db.execution_options(**WRITE)) as session, session.begin():
        session.query(User).filter_by(username="eve").one().active = False
    assert client.get("/").status_code == 302
