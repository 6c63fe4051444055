"""The analytics pages (webui/analytics.py): the figures of real deals and claims driven
through the CRM facade, whose figures each viewer sees, the filters, and the CSV files."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from processes.crm import ClaimDraft
from support.crm import CLASSIFIED
from support.office import as_user, crm_of, register_customer, text

PAGES = ("funnel", "plan", "claims", "managers", "heatmap")


def step(engine, instance_id, user, **data):
    [item] = engine.work_items(instance_id=instance_id)
    engine.complete(item.id, data, user, expected_version=item.version)


@pytest.fixture
def sales(app, office, clock):
    """ann's typical sale that reached the offer and bob's that was lost in needs analysis
    (price), both opened today; a claim against sales; four days later."""
    crm = crm_of(app)
    customer = register_customer(app, name="=HYPERLINK(\"http://evil.example\")")
    reached = crm.start_deal("typical", customer.id, "ann", "Packaging line", "ann", amount="1000")
    lost = crm.start_deal("typical", customer.id, "bob", "Spare parts", "bob", amount="500")
    clock.advance(hours=5)
    step(office, reached.instance_id, "ann", contact_summary="call booked", outcome="continue")
    step(office, lost.instance_id, "bob", contact_summary="call booked", outcome="continue")
    clock.advance(days=1)
    step(office, reached.instance_id, "ann", needs="two lines", budget=2000000, outcome="continue")
    step(office, reached.instance_id, "ann", **CLASSIFIED)
    step(office, lost.instance_id, "bob", needs="cheap", outcome="lost")
    step(office, lost.instance_id, "bob", lost_reason="price")
    crm.register_claim(ClaimDraft(customer_id=customer.id, complainant="Ivan", essence="Wet boxes",
                                  reason="damaged", guilty_department="sales", guilty_employee="ann"), "ann")
    clock.advance(days=3)
    return reached, lost


def chart(page: str, name: str) -> dict:
    match = re.search(rf'data-chart="{name}">.*?<script type="application/json" class="an-chart-spec">(.*?)</script>',
                      page, re.S)
    return json.loads(match.group(1))


def read_csv(response) -> list[list[str]]:
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff"), "Excel needs the byte-order mark to read UTF-8"
    return list(csv.reader(io.StringIO(body[1:])))


def test_every_page_shows_charts_and_tables_of_the_recorded_deals(app, sales):
    boss = as_user(app, "boss")
    for page in PAGES:
        response = boss.get(f"/analytics/{page}")
        assert response.status_code == 200, page
        assert 'class="card an-table"' in response.get_data(as_text=True), page

    funnel = boss.get("/analytics/funnel").get_data(as_text=True)
    reached = chart(funnel, "funnel")["datasets"][0]["data"]
    assert reached == [2, 2, 1, 1, 0, 0, 0, 0, 0], "both deals in contact and needs analysis, ann's beyond"
    assert chart(funnel, "pareto")["labels"] == ["Price too high"]
    stages = read_csv(boss.get("/analytics/funnel.csv?table=stages"))
    assert stages[0][:6] == ["Stage", "Entered", "Reached (at or beyond)", "Went on",
                             "Conversion to the next stage (%)", "Lost here"]
    first_contact, needs_analysis = stages[1], stages[2]
    assert first_contact[:6] == ["First contact", "2", "2", "2", "100.0", "0"]
    assert needs_analysis[:6] == ["Needs analysis", "2", "2", "1", "50.0", "1"]
    assert float(first_contact[6]) == pytest.approx(5 / 24, abs=0.05)  # five hours in first contact

    managers = read_csv(boss.get("/analytics/managers.csv?table=managers&from=2026-11-01&to=2026-11-30"))
    by_name = {row[0]: row for row in managers[1:]}
    assert set(by_name) == {"Anna Sales", "Bob Sales"}
    assert managers[0][1] == "Deals started: Nov 1, 2026 – Nov 30, 2026"
    assert (by_name["Anna Sales"][1], by_name["Bob Sales"][1]) == ("1", "1")
    assert by_name["Anna Sales"][2] == "1", "a deal more than in October"
    claims_caused = managers[0].index("Claims caused: Nov 1, 2026 – Nov 30, 2026")
    assert (by_name["Anna Sales"][claims_caused], by_name["Bob Sales"][claims_caused]) == ("1", "0")

    months = read_csv(boss.get("/analytics/claims.csv?table=months"))
    assert months[-1] == ["November 2026", "1", "0", "1"]


def test_a_manager_sees_their_team_and_an_admin_everyone(app, office, sales):
    office.add_user("sid", "Sid Support", manager="carl")
    funnel_of = {who: text(as_user(app, who).get("/analytics/funnel")) for who in ("boss", "carl", "root")}
    assert "2 deals opened" in funnel_of["boss"] and "2 deals opened" in funnel_of["root"]
    assert "0 deals opened" in funnel_of["carl"], "carl heads support: ann's and bob's deals are not his"

    carl = as_user(app, "carl")
    assert carl.get("/analytics/funnel?manager=ann").status_code == 403
    assert carl.get("/analytics/funnel?manager=nobody").status_code == 404
    assert carl.get("/analytics/funnel?department=sales").status_code == 404
    assert carl.get("/analytics/managers?manager=sid").status_code == 200
    boss = as_user(app, "boss")
    assert "1 deal opened" in text(boss.get("/analytics/funnel?manager=bob"))
    assert "2 deals opened" in text(boss.get("/analytics/funnel?department=sales"))
    assert as_user(app, "ann").get("/analytics/funnel").status_code == 403


def test_the_plan_lists_deals_behind_plan_and_the_csv_defuses_formulas(app, sales, clock):
    boss = as_user(app, "boss")
    assert "D-000001" not in text(boss.get("/analytics/plan")), "the offer is planned to end on 5 December"
    clock.advance(days=10)
    page = text(boss.get("/analytics/plan"))
    assert "D-000001" in page
    rows = read_csv(boss.get("/analytics/plan.csv?table=deals"))
    assert rows[0] == ["Deal", "Title", "Kind", "Customer", "Curator", "Stage", "Planned end of the stage",
                       "Days behind"]
    assert rows[1] == ["D-000001", "Packaging line", "typical sale", "'=HYPERLINK(\"http://evil.example\")",
                       "Anna Sales", "Commercial offer", "2026-12-05", "2"]
    response = boss.get("/analytics/plan.csv?table=deals")
    assert response.headers["Content-Disposition"] == 'attachment; filename="plan-deals.csv"'
    assert response.mimetype == "text/csv"


def test_filters_that_make_no_sense_are_refused_or_explained(app, sales):
    boss = as_user(app, "boss")
    assert boss.get("/analytics/funnel.csv?table=nope").status_code == 404
    assert boss.get("/analytics/funnel?kind=project").status_code == 404
    assert boss.get("/analytics/heatmap?process=nope").status_code == 404
    assert boss.get("/analytics/claims?department=nope").status_code == 404
    page = boss.get("/analytics/funnel?from=2026-13-01&to=2026-11-01")
    assert page.status_code == 200
    assert "The period must be two dates" in text(page)
    assert "Dec 1, 2025 – Nov 27, 2026" in text(page), "the default: the last twelve months"
    assert "longer than five years" in text(boss.get("/analytics/claims?from=2000-01-01&to=2026-11-01"))


def test_the_managers_page_shows_the_indicators_chosen(app, sales):
    boss = as_user(app, "boss")
    page = boss.get("/analytics/managers?indicator=won&indicator=claims_caused&indicator=bogus"
                    "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert re.findall(r'data-chart="(\w+)"', page) == ["indicator_won", "indicator_claims_caused"]
    assert chart(page, "indicator_claims_caused")["datasets"][0]["data"] == [1, 0]
    assert "Oct 1, 2026 – Oct 31, 2026" in page and "Nov 1, 2025 – Nov 30, 2025" in page
    rows = read_csv(boss.get("/analytics/managers.csv?table=managers&indicator=won&from=2026-11-01&to=2026-11-30"))
    assert rows[0] == ["Manager", "Won: Nov 1, 2026 – Nov 30, 2026", "Won: Δ against Oct 1, 2026 – Oct 31, 2026",
                       "Won: Δ against Nov 1, 2025 – Nov 30, 2025"]


def table_row(page: str, first_cell: str) -> list[str]:
    """The cells of the table row that begins with ``first_cell``, as HTML."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        cells = [cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and re.sub(r"<[^>]+>", "", cells[0]) == first_cell:
            return cells
    raise AssertionError(f"no row of {first_cell!r}")


@pytest.mark.parametrize("locale, zero_share", [("en", "0.0%"), ("ru", "0,0%")])
def test_the_managers_table_formats_counts_shares_changes_and_gaps(app, office, sales, locale, zero_share):
    office.add_user("olga", "Olga", password_hash=office.user("boss").password_hash, roles=["employee", "admin"],
                    locale=locale)  # an admin: everyone's figures
    page = as_user(app, "olga").get("/analytics/managers?indicator=deals_started&indicator=conversion"
                                    "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    started_up = '<span class="an-change good">+1</span>'  # one deal started, none a month or a year before
    nothing = '<span class="muted">—</span>'
    # ann's deal is still open: no conversion, and so no change of it; bob lost his.
    assert table_row(page, "Anna Sales")[1:] == ["1", started_up, started_up, nothing, nothing, nothing]
    assert table_row(page, "Bob Sales")[1:] == ["1", started_up, started_up, zero_share, nothing, nothing]


def test_the_heatmap_marks_overdue_steps_and_lists_a_steps_items(app, sales, clock):
    clock.advance(days=1)  # the offer was due three days after it was made
    boss = as_user(app, "boss")
    page = boss.get("/analytics/heatmap?process=typical_sale").get_data(as_text=True)
    heat = json.loads(re.search(r'class="heatmap-data">(.*?)</script>', page, re.S).group(1))
    assert heat["commercial_offer"]["open"] == 1 and heat["commercial_offer"]["severity"] == "high"
    assert "task=commercial_offer" in heat["commercial_offer"]["url"]
    listed = boss.get(heat["commercial_offer"]["url"].split("#")[0])
    assert "Open items of “Commercial offer”" in text(listed)
    assert "D-000001" in text(listed)
    rows = read_csv(boss.get("/analytics/heatmap.csv?table=items&process=typical_sale&task=commercial_offer"))
    assert [row[:3] for row in rows[1:]] == [["Commercial offer", "D-000001", "Anna Sales"]]
    assert "heatmap-data\">{}" in as_user(app, "carl").get("/analytics/heatmap").get_data(as_text=True)


def test_pages_in_russian(app, office, sales):
    office.add_user("olga", "Ольга", password_hash=office.user("boss").password_hash, roles=["employee", "manager"])
    olga = as_user(app, "olga")
    assert "Воронка продаж" in text(olga.get("/analytics/funnel"))
    rows = read_csv(olga.get("/analytics/claims.csv?table=months&from=2026-11-01&to=2026-11-30"))
    assert rows[1][0] == "ноябрь 2026"


def test_nothing_at_all_still_makes_pages(app):
    root = as_user(app, "root")
    for page in PAGES:
        assert root.get(f"/analytics/{page}").status_code == 200, page
