"""Claims (C6): the claims registered in the period by month, guilty department and reason."""

from __future__ import annotations

from typing import Any

from flask import abort
from flask_babel import gettext as _

from processes import analytics
from processes.crm import CLAIM_REASONS
from webui import readmodel
from webui.access import role_required
from webui.analytics import bp
from webui.analytics.filters import (
    Filters,
    analysis_session,
    filters_from_request,
    last_twelve_months,
    local_zone,
    month_text,
    render_page,
    working_days_for,
)
from webui.analytics.tables import Column, Table, chart, csv_download, dataset, pick_table
from webui.i18n import label


def claims_figures(filters: Filters) -> tuple[dict[str, str], analytics.ClaimsAnalytics]:
    working_days = working_days_for([filters.period])
    with analysis_session() as session:
        departments = readmodel.departments(session)
        if filters.department and filters.department not in departments:
            abort(404)
        return departments, analytics.claims_analytics(session, filters.period, local_zone(), working_days,
                                                       department=filters.department)


def _department_label(departments: dict[str, str], name: str | None) -> str:
    return departments.get(name, name) if name else _("no department named")


def _claims_tables(departments: dict[str, str], result: analytics.ClaimsAnalytics) -> list[Table]:
    months = Table("months", _("Claims by month"), [
        Column(_("Month")), Column(_("Registered"), "count"), Column(_("Resolved"), "count"),
        Column(_("Open at the end of the month"), "count")])
    for month in result.months:
        months.add([month_text(month.month), month.registered, month.resolved, month.open_at_end])

    def group_columns(first: str) -> list[Column]:
        return [Column(first), Column(_("Registered"), "count"), Column(_("Resolved"), "count"),
                Column(_("Open"), "count"), Column(_("Satisfied"), "share"), Column(_("Partly satisfied"), "share"),
                Column(_("Rejected"), "share"), Column(_("Resolved in time"), "share"),
                Column(_("Median working days to resolve"), "days"), Column(_("90th percentile"), "days"),
                Column(_("Median working days allowed"), "days")]

    def group_row(name: str, group: analytics.ClaimsGroup) -> list[Any]:
        return [name, group.registered, group.resolved, group.open,
                *(group.resolution_share(resolution) for resolution in analytics.RESOLUTIONS),
                group.on_time_share, group.median_working_days, group.p90_working_days,
                group.median_allowed_working_days]

    note = _("Claims registered in the period. Shares are of the resolved claims; time to resolve and time "
             "allowed (to the response deadline) in working days of the company calendar.")
    by_department = Table("departments", _("By guilty department"), group_columns(_("Department")), note=note)
    for group in result.departments:
        by_department.add(group_row(_department_label(departments, group.key), group))
    by_department.add(group_row(_("All claims"), result.total), row_class="total")
    by_reason = Table("reasons", _("By reason"), group_columns(_("Reason")), note=note)
    for group in result.reasons:
        by_reason.add(group_row(label(group.key), group))
    by_reason.add(group_row(_("All claims"), result.total), row_class="total")
    reasons = [reason for reason in CLAIM_REASONS if any(r == reason for _d, r in result.structure)]
    names = sorted({dept for dept, _r in result.structure},
                   key=lambda d: (d is None, _department_label(departments, d)))
    structure = Table("structure", _("Structure: departments and reasons"),
                      [Column(_("Department")), *(Column(label(reason), "count") for reason in reasons),
                       Column(_("Total"), "count")])
    for name in names:
        counts = [result.structure.get((name, reason), 0) for reason in reasons]
        structure.add([_department_label(departments, name), *counts, sum(counts)])
    return [months, by_department, by_reason, structure]


@bp.route("/claims")
@role_required("manager")
def claims():
    filters = filters_from_request(last_twelve_months)
    departments, result = claims_figures(filters)
    reasons = result.reasons
    charts = [
        chart("months", _("Claims by month"), "bar", [month_text(m.month) for m in result.months], [
            dataset(_("Registered"), [m.registered for m in result.months], "accent"),
            dataset(_("Resolved"), [m.resolved for m in result.months], "ok"),
            dataset(_("Open at the end of the month"), [m.open_at_end for m in result.months], "late",
                   type="line"),
        ]),
        chart("departments", _("Claims by guilty department and resolution"), "bar",
              [_department_label(departments, g.key) for g in result.departments], [
                  *(dataset(label(resolution), [getattr(g, resolution) for g in result.departments], color)
                    for resolution, color in zip(analytics.RESOLUTIONS, ("ok", "risk", "late"))),
                  dataset(_("Not resolved yet"), [g.registered - g.resolved for g in result.departments], "muted"),
              ], stacked=True, horizontal=True),
        chart("resolutions", _("Resolutions by reason"), "bar", [label(g.key) for g in reasons], [
            dataset(label(resolution), [g.resolution_share(resolution) for g in reasons], color, "share")
            for resolution, color in zip(analytics.RESOLUTIONS, ("ok", "risk", "late"))
        ], stacked=True, horizontal=True),
        chart("resolution_time", _("Working days to resolve against the time allowed"), "bar",
              [label(g.key) for g in reasons], [
                  dataset(_("Median to resolve"), [g.median_working_days for g in reasons], "accent", "days"),
                  dataset(_("90th percentile"), [g.p90_working_days for g in reasons], "muted", "days"),
                  dataset(_("Median allowed"), [g.median_allowed_working_days for g in reasons], "late", "days",
                          type="line"),
              ]),
    ]
    return render_page("analytics/claims.html", filters, None, result=result, charts=charts,
                       tables=_claims_tables(departments, result), departments=departments)


@bp.route("/claims.csv")
@role_required("manager")
def claims_csv():
    departments, result = claims_figures(filters_from_request(last_twelve_months))
    return csv_download("claims", pick_table(_claims_tables(departments, result)))
