"""The analytics pages in a real browser: every chart drawn by Chart.js, the heatmap on the
diagram with its badges, a click that lists a task's items; screenshots of each page."""

from __future__ import annotations

import re

import pytest
from conftest import screenshot
from playwright.sync_api import expect

from support.history import write_history

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def history(office):
    """Two years of ann's and bob's deals, claims investigated by sue, their work and escalations."""
    office.add_group("warehouse", "Warehouse")
    return write_history(office, sellers=("ann", "bob"), officer="sue")


def rendered_charts(page, count: int) -> None:
    expect(page.locator("figure[data-chart]")).to_have_count(count)
    expect(page.locator("figure[data-chart][data-rendered]")).to_have_count(count)


def test_a_head_of_sales_reads_every_analytics_page(history, sign_in):
    page = sign_in("boss", height=1100)
    page.click("nav.nav >> text=Analytics")
    expect(page.locator("h1")).to_contain_text("Sales funnel")
    rendered_charts(page, 3)
    expect(page.locator("#table-stages tbody tr")).to_have_count(8)
    screenshot(page, "analytics-funnel")

    page.click("nav.tabs >> text=Plan and fact")
    rendered_charts(page, 2)
    expect(page.locator("#table-deals tbody tr").first).to_be_visible()
    screenshot(page, "analytics-plan")

    page.click("nav.tabs >> text=Claims")
    rendered_charts(page, 4)
    expect(page.locator("#table-months tbody tr")).to_have_count(12)
    screenshot(page, "analytics-claims")

    page.click("nav.tabs >> text=Managers")
    rendered_charts(page, 9)
    page.click(".an-presets >> text=Last quarter")
    for indicator in ("lost", "revenue", "overdue_rate", "avg_working_days_late", "escalations", "claims_caused"):
        page.uncheck(f"input[name=indicator][value={indicator}]")
    page.click("text=Show")
    rendered_charts(page, 3)
    expect(page.locator("#table-managers tbody tr")).to_have_count(2)
    screenshot(page, "analytics-managers")

    page.click("nav.tabs >> text=Overdue heatmap")
    expect(page.locator(".an-heatmap[data-rendered=true]")).to_have_count(1)
    badges = page.locator("a.heat-badge")
    expect(badges.first).to_be_visible()
    screenshot(page, "analytics-heatmap", full_page=False)
    task = badges.first.get_attribute("data-task")
    badges.first.click()
    expect(page).to_have_url(re.compile(f"task={task}"))
    expect(page.locator("#table-items tbody tr").first).to_be_visible()
    expect(page.locator("#table-tasks tr.selected")).to_have_count(1)
