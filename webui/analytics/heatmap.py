"""The overdue heatmap: open work per task of a process, on its diagram, and one task's items."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, request, url_for
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from lxml import etree
from sqlalchemy.orm import Session

from engine.runtime.queries import WorkItemQuery, assigned_to, department
from processes import analytics
from webui import readmodel
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
    render_page,
)
from webui.analytics.tables import Column, Table, csv_download, pick_table
from webui.diagrams import process_file

HEAT_ITEMS_LIMIT = 200


@dataclass(frozen=True)
class Heatmap:
    process_key: str
    processes: dict[str, str]  # key -> name of its latest version
    xml: str
    on_diagram: frozenset[str]  # element ids of the latest version's diagram
    tasks: list[analytics.TaskHeat]
    task: str | None  # the task whose items are listed
    items_total: int
    items: list[analytics.HeatItem]


def heatmap_figures(filters: Filters, item_limit: int | None) -> tuple[Audience, Heatmap]:
    now = engine().clock()
    with analysis_session() as session:
        audience = audience_of(session)
        latest = readmodel.latest_definitions(session)
        if not latest:
            abort(404)
        process_key = request.args.get("process") or ("typical_sale" if "typical_sale" in latest else min(latest))
        if process_key not in latest:
            abort(404)
        scope = _items_scope(session, audience, filters)
        tasks = analytics.overdue_heatmap(session, process_key, now, scope)
        task = request.args.get("task") or None
        total, items = (analytics.heatmap_items(session, process_key, task, scope, item_limit) if task
                        else (0, []))
    _file, xml = process_file(latest[process_key])
    return audience, Heatmap(process_key, {key: d.name or key for key, d in latest.items()}, xml, _element_ids(xml),
                             tasks, task, total, items)


def _items_scope(session: Session, audience: Audience, filters: Filters) -> WorkItemQuery:
    """Open work items of the viewer's department (as on the overdue board), narrowed to
    one employee, or to one department's people and its queue."""
    scope = readmodel.department_query(session, current_user)
    if filters.manager:
        return scope.within(assigned_to(*chosen_people(session, audience, filters)))
    if filters.department:
        return scope.within(department(chosen_people(session, audience, filters), [filters.department]))
    return scope


def _element_ids(xml: str) -> frozenset[str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return frozenset(element.get("id") for element in etree.fromstring(xml.encode("utf-8"), parser).iter()
                     if element.get("id"))


def _heat_tables(heatmap: Heatmap, filters: Filters) -> list[Table]:
    tasks = Table("tasks", _("Open work per task"), [
        Column(_("Task")), Column(_("Open items"), "count"), Column(_("Overdue"), "count"),
        Column(_("Share overdue"), "share"), Column(_("Median age, days"), "days"),
        Column(_("Most days overdue"), "days"), Column(_("Severity"))],
        note=_("Severity by the share of open items overdue: low under 25 %, medium under 50 %, high from 50 %."))
    for task in heatmap.tasks:
        tasks.add([task.name, task.open_items, task.overdue, task.overdue_share, task.median_age_days,
                   task.max_days_overdue, SEVERITY_TITLES[task.severity]],
                  url_for("analytics.heatmap", process=heatmap.process_key, task=task.task_spec,
                          **filters.args(with_period=False)) + "#items",
                  f"heat-{task.severity}" + (" selected" if task.task_spec == heatmap.task else ""))
    selected = next((task.name for task in heatmap.tasks if task.task_spec == heatmap.task), heatmap.task)
    items = Table("items", _("Open items of “%(task)s”, the earliest deadline first", task=selected), [
        Column(_("Item")), Column(_("Deal / claim")), Column(_("Who")), Column(_("Created"), "moment"),
        Column(_("Deadline"), "moment")],
        note=None if len(heatmap.items) == heatmap.items_total else
        _("The first %(num)d of %(total)d; the CSV has them all.", num=len(heatmap.items), total=heatmap.items_total))
    now = engine().clock()
    for item in heatmap.items:
        items.add([item.name, item.business_key or f"#{item.instance_id}", item.assignee or _("queue"),
                   item.created_at, item.due_at], url_for("inbox.item", item_id=item.id),
                  "row-overdue" if item.due_at and item.due_at < now else "")
    return [tasks, items]


SEVERITY_TITLES = {"none": lazy_gettext("none"), "low": lazy_gettext("low"), "medium": lazy_gettext("medium"),
                   "high": lazy_gettext("high")}


@bp.route("/heatmap")
@role_required("manager")
def heatmap():
    filters = filters_from_request(last_twelve_months)
    audience, result = heatmap_figures(filters, HEAT_ITEMS_LIMIT)
    heat = {task.task_spec: {
        "open": task.open_items, "overdue": task.overdue, "severity": task.severity,
        "text": f"{format_decimal(task.open_items)} · {format_percent(task.overdue_share or 0)}",
        "title": _("%(name)s: %(open)s open, %(overdue)s overdue, median age %(age)s days",
                   name=task.name, open=format_decimal(task.open_items), overdue=format_decimal(task.overdue),
                   age=format_decimal(task.median_age_days or 0, "#,##0.0")),
        "url": url_for("analytics.heatmap", process=result.process_key, task=task.task_spec,
                       **filters.args(with_period=False)) + "#items",
    } for task in result.tasks if task.task_spec in result.on_diagram}
    tables = _heat_tables(result, filters)
    off_diagram = [task for task in result.tasks if task.task_spec not in result.on_diagram]
    selected = next((task for task in result.tasks if task.task_spec == result.task), None)
    return render_page("analytics/heatmap.html", filters, audience, with_period=False,
                       extra_args={"process": result.process_key, "task": result.task}, heatmap=result, heat=heat,
                       tables=tables,
                       off_diagram=off_diagram, selected=selected, severity_titles=SEVERITY_TITLES)


@bp.route("/heatmap.csv")
@role_required("manager")
def heatmap_csv():
    filters = filters_from_request(last_twelve_months)
    _audience_seen, result = heatmap_figures(filters, item_limit=None)
    return csv_download(f"heatmap-{result.process_key}", pick_table(_heat_tables(result, filters)))
