"""Plan against fact (D4, M1): deals behind their stage plan and claims past their response
deadline, now."""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from flask_babel import gettext as _

from processes import analytics
from processes.analytics import Period
from webui.access import engine, role_required
from webui.analytics import bp
from webui.analytics.filters import (
    Audience,
    Filters,
    analysis_session,
    audience_of,
    chosen_people,
    filters_from_request,
    last_twelve_months,
    local_today,
    local_zone,
    render_page,
    working_days_for,
)
from webui.analytics.tables import Column, Table, chart, csv_download, dataset, pick_table
from webui.i18n import label

LIST_LIMIT = 50  # rows of a worst-first list on the page; its CSV has every row


@dataclass(frozen=True)
class PlanFigures:
    deal_stages: list[analytics.StageBehind]
    deals: list[analytics.DealBehind]
    claim_states: list[analytics.StageBehind]
    claims: list[analytics.ClaimBehind]


def plan_figures(filters: Filters, limit: int | None) -> tuple[Audience, PlanFigures]:
    now, today = engine().clock(), local_today()
    # Lateness is counted from the oldest open claim's deadline on. (The calendar is written
    # before the queries' transaction starts: a SQLite snapshot would not see it after.)
    with analysis_session() as session:
        oldest = analytics.oldest_open_claim_deadline(session)
    first = min(today, oldest.astimezone(local_zone()).date()) if oldest else today
    working_days = working_days_for([Period(first, today)])
    with analysis_session() as session:
        audience = audience_of(session)
        curators = chosen_people(session, audience, filters)
        officers = None if curators is None else [audience.people[user_id][0] for user_id in curators
                                                   if user_id in audience.people]
        # Claims nobody has triaged yet wait in the heads' queue: part of every manager's view,
        # but of no one employee's or department's.
        untriaged = not (filters.manager or filters.department)
        return audience, PlanFigures(
            deal_stages=analytics.deals_behind_by_stage(session, today, curators),
            deals=analytics.deals_behind(session, today, curators, limit=limit),
            claim_states=analytics.claims_behind_by_status(session, now, working_days, officers, untriaged),
            claims=analytics.claims_behind(session, now, working_days, officers, untriaged, limit=limit),
        )


def _plan_tables(figures: PlanFigures, complete: bool) -> list[Table]:
    deal_stages = Table("deal_stages", _("Deals behind plan by stage"), [
        Column(_("Stage")), Column(_("In progress"), "count"), Column(_("Behind plan"), "count"),
        Column(_("Median days behind"), "days"), Column(_("Most days behind"), "count")])
    for row in figures.deal_stages:
        deal_stages.add([label(row.stage), row.open, row.behind, row.median_days, row.max_days])
    deals = Table("deals", _("Deals behind plan, the worst first"), [
        Column(_("Deal")), Column(_("Title")), Column(_("Kind")), Column(_("Customer")), Column(_("Curator")),
        Column(_("Stage")), Column(_("Planned end of the stage"), "date"), Column(_("Days behind"), "count")],
        note=None if complete or len(figures.deals) < LIST_LIMIT else
        _("The first %(num)d; the CSV has them all.", num=LIST_LIMIT))
    for deal in figures.deals:
        deals.add([deal.number, deal.title, label(deal.kind), deal.customer, deal.curator, label(deal.stage),
                   deal.planned_end, deal.days_behind], url_for("deals.deal", deal_id=deal.deal_id))
    claim_states = Table("claim_states", _("Claims past the response deadline by state"), [
        Column(_("State")), Column(_("Open"), "count"), Column(_("Past the deadline"), "count"),
        Column(_("Median working days late"), "days"), Column(_("Most working days late"), "count")])
    for row in figures.claim_states:
        claim_states.add([label(row.stage), row.open, row.behind, row.median_days, row.max_days])
    claims = Table("claims", _("Claims past the response deadline, the longest overdue first"), [
        Column(_("Claim")), Column(_("Customer")), Column(_("Reason")), Column(_("State")),
        Column(_("Responsible")), Column(_("Response due"), "moment"), Column(_("Working days late"), "count")],
        note=None if complete or len(figures.claims) < LIST_LIMIT else
        _("The first %(num)d; the CSV has them all.", num=LIST_LIMIT))
    for claim in figures.claims:
        claims.add([claim.number, claim.customer, label(claim.reason), label(claim.status),
                    claim.responsible or _("not triaged yet"), claim.response_due_at, claim.working_days_late],
                   url_for("deals.claim", claim_id=claim.claim_id))
    return [deal_stages, deals, claim_states, claims]


@bp.route("/plan")
@role_required("manager")
def plan():
    filters = filters_from_request(last_twelve_months)
    audience, figures = plan_figures(filters, LIST_LIMIT)
    charts = [
        chart("deals_plan", _("Deals in progress: on plan and behind"), "bar",
              [label(row.stage) for row in figures.deal_stages], [
                  dataset(_("On plan"), [row.open - row.behind for row in figures.deal_stages], "ok"),
                  dataset(_("Behind plan"), [row.behind for row in figures.deal_stages], "late"),
              ], stacked=True),
        chart("claims_plan", _("Open claims: in time and past the response deadline"), "bar",
              [label(row.stage) for row in figures.claim_states], [
                  dataset(_("In time"), [row.open - row.behind for row in figures.claim_states], "ok"),
                  dataset(_("Past the deadline"), [row.behind for row in figures.claim_states], "late"),
              ], stacked=True),
    ]
    return render_page("analytics/plan.html", filters, audience, with_period=False, charts=charts,
                       tables=_plan_tables(figures, False))


@bp.route("/plan.csv")
@role_required("manager")
def plan_csv():
    _audience_seen, figures = plan_figures(filters_from_request(last_twelve_months), limit=None)
    return csv_download("plan", pick_table(_plan_tables(figures, True)))
