"""The sales funnel (S5): how far the deals opened in the period got, how long they stayed
in each stage, and why deals were lost."""

from __future__ import annotations

from flask_babel import gettext as _

from processes import analytics
from processes.analytics import FUNNEL_KINDS
from processes.stages import STAGE_CODES
from webui.access import role_required
from webui.analytics import bp
from webui.analytics.filters import (
    Audience,
    Filters,
    analysis_session,
    audience_of,
    chosen_people,
    filters_from_request,
    last_twelve_months,
    local_zone,
    render_page,
)
from webui.analytics.tables import Column, Table, chart, csv_download, dataset, pick_table
from webui.i18n import label, lost_reason


def funnel_figures(filters: Filters) -> tuple[Audience, analytics.Funnel]:
    with analysis_session() as session:
        audience = audience_of(session)
        curators = chosen_people(session, audience, filters)
        kinds = [filters.kind] if filters.kind else FUNNEL_KINDS
        return audience, analytics.sales_funnel(session, filters.period.window(local_zone()), kinds=kinds,
                                                curators=curators)


def _reason_label(code: str | None) -> str:
    return lost_reason(code) if code else _("not given")


def _funnel_tables(funnel: analytics.Funnel) -> list[Table]:
    stages = Table("stages", _("Stages"), [
        Column(_("Stage")), Column(_("Entered"), "count"), Column(_("Reached (at or beyond)"), "count"),
        Column(_("Went on"), "count"), Column(_("Conversion to the next stage"), "share"),
        Column(_("Lost here"), "count"), Column(_("Median days in stage"), "days"),
        Column(_("90th percentile, days"), "days")],
        note=_("Conversion: of the deals that reached a stage, the share that got beyond it (to a later "
               "stage, or won after the last one). Days in stage: calendar days of each finished stay in the "
               "stage (a deal that came back to a stage stayed in it twice)."))
    for stage in funnel.stages:
        stages.add([label(stage.stage), stage.entered, stage.reached, stage.converted, stage.conversion,
                    stage.lost, stage.median_days, stage.p90_days])
    reasons = Table("reasons", _("Why deals were lost (Pareto)"), [
        Column(_("Reason")), Column(_("Deals"), "count"), Column(_("Share"), "share"),
        Column(_("Cumulative share"), "share")])
    for reason in funnel.lost_reasons:
        reasons.add([_reason_label(reason.reason), reason.deals, reason.share, reason.cumulative_share])
    reason_codes = sorted({reason for _stage, reason in funnel.lost_by_stage},
                          key=lambda code: (-sum(n for (_s, r), n in funnel.lost_by_stage.items() if r == code),
                                            code or ""))
    by_stage = Table("lost_by_stage", _("Lost deals by stage and reason"),
                     [Column(_("Stage")), *(Column(_reason_label(code), "count") for code in reason_codes),
                      Column(_("Total"), "count")])
    for code in STAGE_CODES:
        counts = [funnel.lost_by_stage.get((code, reason), 0) for reason in reason_codes]
        if any(counts):
            by_stage.add([label(code), *counts, sum(counts)])
    return [stages, reasons, by_stage]


@bp.route("/funnel")
@role_required("manager")
def funnel():
    filters = filters_from_request(last_twelve_months)
    audience, result = funnel_figures(filters)
    labels = [label(stage.stage) for stage in result.stages]
    charts = [
        chart("funnel", _("Deals reaching each stage"), "bar", [*labels, _("Won")], [
            dataset(_("Reached"), [stage.reached for stage in result.stages] + [result.won], "accent"),
            dataset(_("Lost at the stage"), [stage.lost for stage in result.stages] + [0], "late"),
        ], horizontal=True),
        chart("stage_time", _("Days in each stage"), "bar", labels, [
            dataset(_("Median"), [stage.median_days for stage in result.stages], "accent", "days"),
            dataset(_("90th percentile"), [stage.p90_days for stage in result.stages], "muted", "days"),
        ]),
        chart("pareto", _("Why deals were lost (Pareto)"), "bar",
              [_reason_label(reason.reason) for reason in result.lost_reasons], [
                  dataset(_("Deals"), [reason.deals for reason in result.lost_reasons], "late"),
                  dataset(_("Cumulative share"), [reason.cumulative_share for reason in result.lost_reasons],
                          "ink", "share", type="line"),
              ]),
    ]
    return render_page("analytics/funnel.html", filters, audience, result=result, charts=charts,
                       tables=_funnel_tables(result), kinds=FUNNEL_KINDS)


@bp.route("/funnel.csv")
@role_required("manager")
def funnel_csv():
    _audience_seen, result = funnel_figures(filters_from_request(last_twelve_months))
    return csv_download("funnel", pick_table(_funnel_tables(result)))
