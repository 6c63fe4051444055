"""The comparison of managers (M2): each one's indicators in the period, against the period
before and a year before."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_babel import lazy_gettext

from processes import analytics
from processes.analytics import INDICATORS, Period
from webui.access import engine, role_required
from webui.analytics import bp
from webui.analytics.filters import (
    Audience,
    Filters,
    analysis_session,
    audience_of,
    chosen_people,
    filters_from_request,
    last_month,
    local_zone,
    period_text,
    render_page,
    working_days_for,
)
from webui.analytics.tables import Column, Table, chart, csv_download, dataset, pick_table

CHART_MANAGERS = 25  # bars per indicator chart
INDICATOR_TITLES = {
    "deals_started": lazy_gettext("Deals started"),
    "won": lazy_gettext("Won"),
    "lost": lazy_gettext("Lost"),
    "conversion": lazy_gettext("Conversion (won of closed)"),
    "revenue": lazy_gettext("Revenue won"),
    "overdue_rate": lazy_gettext("Overdue rate"),
    "avg_working_days_late": lazy_gettext("Average working days late"),
    "escalations": lazy_gettext("Escalations received"),
    "claims_caused": lazy_gettext("Claims caused"),
}
INDICATOR_KINDS = {"conversion": "share", "overdue_rate": "share", "revenue": "money",
                   "avg_working_days_late": "days"}
# Fewer is better for these: the table marks their increases, not their decreases, as worse.
LOWER_IS_BETTER = {"lost", "overdue_rate", "avg_working_days_late", "escalations", "claims_caused"}


def _indicators() -> list[str]:
    chosen = [name for name in request.args.getlist("indicator") if name in INDICATORS]
    return chosen or list(INDICATORS)


def managers_figures(filters: Filters) -> tuple[Audience, list[Period], list[analytics.ManagerRow]]:
    periods = [filters.period, filters.period.previous(), filters.period.year_before()]
    working_days = working_days_for(periods)
    with analysis_session() as session:
        audience = audience_of(session)
        rows = analytics.compare_managers(session, [period.window(local_zone()) for period in periods],
                                          chosen_people(session, audience, filters), engine().clock(), working_days)
    return audience, periods, rows


def _managers_table(periods: list[Period], rows: list[analytics.ManagerRow], indicators: list[str]) -> Table:
    columns = [Column(_("Manager"))]
    for name in indicators:
        kind, title = INDICATOR_KINDS.get(name, "count"), str(INDICATOR_TITLES[name])
        change = "change_share" if kind == "share" else "change"
        better = "lower" if name in LOWER_IS_BETTER else "higher"
        columns += [Column(period_text(periods[0]), kind, group=title),
                    *(Column(_("Δ against %(period)s", period=period_text(period)), change, better, title)
                      for period in periods[1:])]
    table = Table("managers", _("Managers"), columns)
    for row in rows:
        cells: list[Any] = [row.display_name]
        for name in indicators:
            cells += [row.periods[0].indicator(name), row.change(name, 1), row.change(name, 2)]
        table.add(cells)
    return table


def _indicator_chart(name: str, rows: list[analytics.ManagerRow]) -> dict[str, Any]:
    """One indicator's small chart: this period, the previous one and a year before, for
    the managers with the highest figures this period (a whole company's would be a blur;
    the table lists everyone)."""
    ranked = sorted(rows, key=lambda row: (row.periods[0].indicator(name) is None,
                                           -(row.periods[0].indicator(name) or 0)))
    shown = ranked[:CHART_MANAGERS]
    title = str(INDICATOR_TITLES[name])
    if len(shown) < len(rows):
        title = ngettext("%(indicator)s: top %(num)d", "%(indicator)s: top %(num)d", len(shown), indicator=title)
    legends = [_("This period"), _("Previous period"), _("A year before")]
    return chart(f"indicator_{name}", title, "bar", [row.display_name for row in shown], [
        dataset(legend, [row.periods[index].indicator(name) for row in shown], color,
                INDICATOR_KINDS.get(name, "count"))
        for index, (legend, color) in enumerate(zip(legends, ("accent", "muted", "pale")))
    ])


@bp.route("/managers")
@role_required("manager")
def managers():
    filters = filters_from_request(last_month)
    indicators = _indicators()
    audience, periods, rows = managers_figures(filters)
    return render_page("analytics/managers.html", filters, audience, extra_args={"indicator": indicators},
                       charts=[_indicator_chart(name, rows) for name in indicators],
                       period_texts=[period_text(period) for period in periods], indicators=indicators,
                       all_indicators=INDICATORS, indicator_titles=INDICATOR_TITLES,
                       managers_table=_managers_table(periods, rows, indicators))


@bp.route("/managers.csv")
@role_required("manager")
def managers_csv():
    _audience_seen, periods, rows = managers_figures(filters_from_request(last_month))
    return csv_download("managers", pick_table([_managers_table(periods, rows, _indicators())]))
