"""Managers: the analytics pages. The sales funnel (S5), plan against fact (D4, M1), claims
(C6), the comparison of managers (M2) and the overdue heatmap on a process diagram.

Every page shows a chart first and the table behind it second, and every table is a CSV
download (``<page>.csv?table=<name>`` with the page's filters). The figures come from
``processes.analytics`` (SQL aggregation); this module picks the period, limits the figures
to the people the viewer is responsible for, and presents them.

Who sees what: managers the deals, work and escalations of their team (``team_ids``: reports
down the line and members of the groups they head) and their own; admins everyone's. The
claims analytics (C6) are company-wide figures about departments and reasons, for every
manager; the list of late claims follows the responsible officers of the viewer's team.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from babel import dates as babel_dates
from babel.numbers import NumberPattern, parse_pattern
from flask_babel import format_date, format_decimal, format_percent, get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import current_user
from lxml import etree
from markupsafe import Markup, escape
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, undefer

from engine.models import Group, Membership, ProcessDefinition, User, WorkItem
from processes import analytics
from processes.analytics import INDICATORS, FUNNEL_KINDS, Period, WorkingDays
from processes.crm import CLAIM_REASONS
from processes.stages import STAGE_CODES
from webui.access import candidate_filter, engine, role_required, team_ids
from webui.board import department_condition
from webui.diagrams import process_file
from webui.i18n import Dates, label, lost_reason

bp = Blueprint("analytics", __name__, url_prefix="/analytics")

LIST_LIMIT = 50  # rows of a worst-first list on the page; its CSV has every row
HEAT_ITEMS_LIMIT = 200
CHART_MANAGERS = 25  # bars per indicator chart
MAX_PERIOD_DAYS = 5 * 366
# Working days are counted up to deadlines that fall after the period (a claim registered
# on its last day is due ten working days later): the calendar table covers them too.
CALENDAR_MARGIN = timedelta(days=62)
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


# -- presentation: tables and charts --------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    kind: str = "text"  # text, count, share, days, money, date, moment, change, change_share
    # For a change: which way is an improvement ("higher" or "lower"), to colour it.
    better: str | None = None
    # Columns of one group share a heading above theirs (an indicator over its three columns).
    group: str | None = None

    @property
    def full_title(self) -> str:
        return f"{self.group}: {self.title}" if self.group else str(self.title)

    @property
    def numeric(self) -> bool:
        return self.kind not in ("text", "date", "moment")


@dataclass
class Table:
    """One table of a page, and its CSV: the same rows, formatted for each."""

    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    links: list[str | None] = field(default_factory=list)  # a link for each row's first cell
    row_classes: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def header_groups(self) -> list[tuple[str | None, int]]:
        """(group, how many columns) for each run of neighbouring columns of one group; empty
        when no column has a group."""
        if not any(column.group for column in self.columns):
            return []
        runs: list[tuple[str | None, int]] = []
        for column in self.columns:
            if runs and runs[-1][0] == column.group:
                runs[-1] = (column.group, runs[-1][1] + 1)
            else:
                runs.append((column.group, 1))
        return runs

    def add(self, row: list[Any], link: str | None = None, row_class: str = "") -> None:
        self.rows.append(row)
        self.links.append(link)
        self.row_classes.append(row_class)


def _chart(name: str, title: str, kind: str, labels: Sequence[str], datasets: list[dict[str, Any]],
           **options: Any) -> dict[str, Any]:
    """What static/analytics.js draws: Chart.js's bar or line chart from plain data.
    A dataset may say its ``axis`` (count, share, days, money), its ``type`` (line on a
    bar chart) and its ``color`` (one of the palette's names)."""
    return {"name": name, "title": title, "type": kind, "labels": [str(text) for text in labels],
            "datasets": datasets, "options": options}


def _dataset(label_text: str, data: Iterable[Any], color: str, axis: str = "count", **extra: Any) -> dict[str, Any]:
    return {"label": str(label_text), "data": [_plain(value) for value in data], "color": color, "axis": axis,
            **extra}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


# -- the period, the filters, and whose figures ---------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(str(get_timezone()))


def _today() -> date:
    return engine().clock().astimezone(_zone()).date()


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def last_twelve_months(today: date) -> Period:
    """This month so far and the eleven before it."""
    return Period(_month_start(today, 11), today)


def last_month(today: date) -> Period:
    return Period(_month_start(today, 1), _month_start(today) - timedelta(days=1))


def presets(today: date) -> list[tuple[str, Period]]:
    """The periods a manager asks for most, as links above the filters."""
    this_quarter = _quarter_start(today)
    last_quarter = _quarter_start(this_quarter - timedelta(days=1))
    return [
        (_("This month"), Period(_month_start(today), today)),
        (_("Last month"), last_month(today)),
        (_("This quarter"), Period(this_quarter, today)),
        (_("Last quarter"), Period(last_quarter, this_quarter - timedelta(days=1))),
        (_("This year"), Period(date(today.year, 1, 1), today)),
        (_("Last year"), Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))),
        (_("Last 12 months"), last_twelve_months(today)),
    ]


@dataclass(frozen=True)
class Filters:
    period: Period
    department: str | None = None
    manager: str | None = None  # a username
    kind: str | None = None  # funnel: one kind of deal, or both
    problem: str | None = None  # why the period asked for was not used

    def args(self, with_period: bool = True, **changes: Any) -> dict[str, str]:
        """The query string of these filters (with ``changes``), for links and CSV."""
        values = {"department": self.department, "manager": self.manager, "kind": self.kind} | changes
        if with_period:
            values |= {"from": self.period.first.isoformat(), "to": self.period.last.isoformat()}
        return {name: value for name, value in values.items() if value}


def _filters(default: Callable[[date], Period]) -> Filters:
    today = _today()
    period, problem = default(today), None
    first, last = request.args.get("from", "").strip(), request.args.get("to", "").strip()
    if first or last:
        try:
            asked = Period(date.fromisoformat(first) if first else period.first,
                           date.fromisoformat(last) if last else period.last)
        except ValueError:
            problem = _("The period must be two dates, the first not after the last; showing the default period.")
        else:
            if asked.days > MAX_PERIOD_DAYS:
                problem = _("The period is longer than five years; showing the default period.")
            else:
                period = asked
    kind = request.args.get("kind") or None
    if kind is not None and kind not in FUNNEL_KINDS:
        abort(404)
    return Filters(period, request.args.get("department") or None, request.args.get("manager") or None, kind,
                   problem)


@dataclass(frozen=True)
class Audience:
    """Whose figures the viewer may see: themselves and their team, or everyone (admin)."""

    everyone: bool
    people: dict[int, tuple[str, str]]  # id -> (username, display name)
    departments: dict[str, str]  # group name -> display name

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self.people)

    def choices(self) -> list[tuple[str, str]]:
        return sorted(((username, name) for username, name in self.people.values()), key=lambda pair: pair[1])


def _audience(session: Session) -> Audience:
    person = current_user
    users = select(User.id, User.username, User.display_name)
    groups = select(Group.name, Group.display_name)
    if not person.is_admin:
        ids = team_ids(session, person) | {person.id}
        users = users.where(User.id.in_(ids))
        groups = groups.where(or_(Group.head_id == person.id,
                                  Group.id.in_(select(Membership.group_id).where(Membership.user_id.in_(ids)))))
    return Audience(
        everyone=person.is_admin,
        people={user_id: (username, name) for user_id, username, name in session.execute(users)},
        departments=dict(session.execute(groups.order_by(Group.display_name)).all()),
    )


def _chosen_people(session: Session, audience: Audience, filters: Filters) -> Collection[int] | None:
    """The people the filters pick within the audience; None when that is everyone."""
    if filters.manager:
        chosen = [user_id for user_id, (username, _name) in audience.people.items() if username == filters.manager]
        if not chosen:
            abort(403 if session.scalar(select(User.id).where(User.username == filters.manager)) else 404)
        return chosen
    if filters.department:
        if filters.department not in audience.departments:
            abort(404)
        members = set(session.scalars(select(Membership.user_id).join(Group, Group.id == Membership.group_id)
                                      .where(Group.name == filters.department)))
        return members if audience.everyone else members & audience.ids
    return None if audience.everyone else audience.ids


@contextmanager
def _session() -> Iterator[Session]:
    with engine().reading() as session:
        yield analytics.for_analysis(session)


def _working_days(periods: Iterable[Period]) -> WorkingDays:
    periods = list(periods)
    first = min(period.first for period in periods) - timedelta(days=1)
    last = max([period.last for period in periods] + [_today()]) + CALENDAR_MARGIN
    return analytics.prepare_working_days(engine().db, engine().working_calendar, first, last)


def _page(template: str, filters: Filters, audience: Audience | None, *, with_period: bool = True,
          extra_args: dict[str, Any] | None = None, **context: Any) -> str:
    """Render an analytics page; ``link(endpoint, **changes)`` in the template keeps the
    page's filters (and ``extra_args``) in every link, the CSV downloads among them."""
    page_args = filters.args(with_period=with_period) | (extra_args or {})

    def link(endpoint: str, **changes: Any) -> str:
        return url_for(endpoint, **(page_args | changes))

    preset_links = [(title, link(request.endpoint, **{"from": period.first.isoformat(), "to": period.last.isoformat()}),
                     period == filters.period) for title, period in presets(_today())]
    return render_template(template, filters=filters, audience=audience, presets=preset_links, link=link,
                           with_period=with_period, **context)


def _csv(filename: str, table: Table) -> Response:
    """The table as CSV: UTF-8 with a byte-order mark (so that Excel reads Cyrillic),
    numbers unformatted, shares in per cent; text that a spreadsheet would run as a
    formula is quoted with an apostrophe."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([column.full_title + (" (%)" if column.kind in ("share", "change_share") else "")
                     for column in table.columns])
    dates = Dates()
    for row in table.rows:
        writer.writerow([_csv_cell(value, column.kind, dates) for value, column in zip(row, table.columns)])
    return Response(buffer.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}-{table.name}.csv"'})


def _csv_cell(value: Any, kind: str, dates: Dates) -> Any:
    if value is None:
        return ""
    if kind in ("share", "change_share"):
        return round(value * 100, 1)
    if kind == "days":
        return round(value, 1)
    if kind == "moment":
        return value.astimezone(dates.timezone).strftime("%Y-%m-%d %H:%M")
    if kind == "date":
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _pick(tables: Iterable[Table]) -> Table:
    wanted = request.args.get("table", "")
    table = next((table for table in tables if table.name == wanted), None)
    if table is None:
        abort(404)
    return table


class Formats:
    """The pages' numbers and table cells in the user's locale. The locale is looked up and
    each number pattern parsed once per page, and a cell is formatted here rather than by a
    Jinja macro: the comparison of everyone has thousands of cells, and per cell those cost
    more than the page's queries."""

    def __init__(self) -> None:
        self.locale = get_locale()
        self.dates = Dates()
        self._patterns: dict[str, NumberPattern] = {}
        # Such a table repeats a few small numbers (counts, changes of one) thousands of times.
        self._formatted: dict[tuple[str, type, float | int | Decimal], str] = {}
        self._by_kind: dict[str, Callable[[Any], str]] = {
            "count": self._number, "share": self.share, "days": self.days, "money": self.money,
            "date": self.day, "moment": self.dates.when}

    def _number(self, value: float | int | Decimal, pattern: str = "") -> str:
        key = (pattern, type(value), value)
        formatted = self._formatted.get(key)
        if formatted is None:
            parsed = self._patterns.get(pattern)
            if parsed is None:
                parsed = self._patterns[pattern] = (
                    parse_pattern(pattern) if pattern else self.locale.decimal_formats[None])
            formatted = self._formatted[key] = parsed.apply(value, self.locale)
        return formatted

    def share(self, value: float | None) -> str:
        return "—" if value is None else self._number(value, "#,##0.0%")

    def days(self, value: float | None) -> str:
        return "—" if value is None else self._number(value, "#,##0.0")

    def money(self, value: Decimal | None) -> str:
        return "—" if value is None else self._number(value, "#,##0.00")

    def change(self, value: float | int | Decimal, kind: str) -> str:
        """Signed; a change of a share in percentage points."""
        if kind == "change_share":
            return _("%(points)s pp", points=self._number(value * 100, "+#,##0.0;−#,##0.0"))
        return self._number(value, "+#,##0.##;−#,##0.##") if value else "0"

    def day(self, value: date) -> str:
        return babel_dates.format_date(value, "medium", locale=self.locale)

    def cell(self, value: Any, column: Column) -> Markup:
        if value is None:
            return Markup('<span class="muted">—</span>')
        kind = column.kind
        if kind in ("change", "change_share"):
            improved = (value > 0 and column.better == "higher") or (value < 0 and column.better == "lower")
            worse = (value < 0 and column.better == "higher") or (value > 0 and column.better == "lower")
            verdict = "good" if improved else "bad" if worse else ""
            return Markup(f'<span class="an-change {verdict}">{escape(self.change(value, kind))}</span>')
        formatted = self._by_kind.get(kind)
        return escape(formatted(value) if formatted else value)


@bp.context_processor
def formatting() -> dict[str, Any]:
    formats = Formats()
    return {"share": formats.share, "days": formats.days, "money": formats.money, "change": formats.change,
            "day": formats.day, "cell": formats.cell}


@bp.route("/")
@role_required("manager")
def index():
    return redirect(url_for("analytics.funnel"))


# -- the sales funnel (S5) ----------------------------------------------------------------


def _funnel(filters: Filters) -> tuple[Audience, analytics.Funnel]:
    with _session() as session:
        audience = _audience(session)
        curators = _chosen_people(session, audience, filters)
        kinds = [filters.kind] if filters.kind else FUNNEL_KINDS
        return audience, analytics.sales_funnel(session, filters.period.window(_zone()), kinds=kinds,
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
    filters = _filters(last_twelve_months)
    audience, result = _funnel(filters)
    labels = [label(stage.stage) for stage in result.stages]
    charts = [
        _chart("funnel", _("Deals reaching each stage"), "bar", [*labels, _("Won")], [
            _dataset(_("Reached"), [stage.reached for stage in result.stages] + [result.won], "accent"),
            _dataset(_("Lost at the stage"), [stage.lost for stage in result.stages] + [0], "late"),
        ], horizontal=True),
        _chart("stage_time", _("Days in each stage"), "bar", labels, [
            _dataset(_("Median"), [stage.median_days for stage in result.stages], "accent", "days"),
            _dataset(_("90th percentile"), [stage.p90_days for stage in result.stages], "muted", "days"),
        ]),
        _chart("pareto", _("Why deals were lost (Pareto)"), "bar",
               [_reason_label(reason.reason) for reason in result.lost_reasons], [
                   _dataset(_("Deals"), [reason.deals for reason in result.lost_reasons], "late"),
                   _dataset(_("Cumulative share"), [reason.cumulative_share for reason in result.lost_reasons],
                            "ink", "share", type="line"),
               ]),
    ]
    return _page("analytics/funnel.html", filters, audience, result=result, charts=charts,
                 tables=_funnel_tables(result), kinds=FUNNEL_KINDS)


@bp.route("/funnel.csv")
@role_required("manager")
def funnel_csv():
    _audience_seen, result = _funnel(_filters(last_twelve_months))
    return _csv("funnel", _pick(_funnel_tables(result)))


# -- plan against fact (D4, M1) -----------------------------------------------------------


@dataclass(frozen=True)
class PlanFigures:
    deal_stages: list[analytics.StageBehind]
    deals: list[analytics.DealBehind]
    claim_states: list[analytics.StageBehind]
    claims: list[analytics.ClaimBehind]


def _plan(filters: Filters, limit: int | None) -> tuple[Audience, PlanFigures]:
    now, today = engine().clock(), _today()
    # Lateness is counted from the oldest open claim's deadline on. (The calendar is written
    # before the queries' transaction starts: a SQLite snapshot would not see it after.)
    with _session() as session:
        oldest = analytics.oldest_open_claim_deadline(session)
    working_days = _working_days([Period(min(today, oldest.astimezone(_zone()).date()) if oldest else today, today)])
    with _session() as session:
        audience = _audience(session)
        curators = _chosen_people(session, audience, filters)
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
    filters = _filters(last_twelve_months)
    audience, figures = _plan(filters, LIST_LIMIT)
    charts = [
        _chart("deals_plan", _("Deals in progress: on plan and behind"), "bar",
               [label(row.stage) for row in figures.deal_stages], [
                   _dataset(_("On plan"), [row.open - row.behind for row in figures.deal_stages], "ok"),
                   _dataset(_("Behind plan"), [row.behind for row in figures.deal_stages], "late"),
               ], stacked=True),
        _chart("claims_plan", _("Open claims: in time and past the response deadline"), "bar",
               [label(row.stage) for row in figures.claim_states], [
                   _dataset(_("In time"), [row.open - row.behind for row in figures.claim_states], "ok"),
                   _dataset(_("Past the deadline"), [row.behind for row in figures.claim_states], "late"),
               ], stacked=True),
    ]
    return _page("analytics/plan.html", filters, audience, with_period=False, charts=charts,
                 tables=_plan_tables(figures, False))


@bp.route("/plan.csv")
@role_required("manager")
def plan_csv():
    _audience_seen, figures = _plan(_filters(last_twelve_months), limit=None)
    return _csv("plan", _pick(_plan_tables(figures, True)))


# -- claims (C6) --------------------------------------------------------------------------


def _claims(filters: Filters) -> tuple[dict[str, str], analytics.ClaimsAnalytics]:
    working_days = _working_days([filters.period])
    with _session() as session:
        departments = dict(session.execute(select(Group.name, Group.display_name)
                                           .order_by(Group.display_name)).all())
        if filters.department and filters.department not in departments:
            abort(404)
        return departments, analytics.claims_analytics(session, filters.period, _zone(), working_days,
                                                       department=filters.department)


def _department_label(departments: dict[str, str], name: str | None) -> str:
    return departments.get(name, name) if name else _("no department named")


def _claims_tables(departments: dict[str, str], result: analytics.ClaimsAnalytics) -> list[Table]:
    months = Table("months", _("Claims by month"), [
        Column(_("Month")), Column(_("Registered"), "count"), Column(_("Resolved"), "count"),
        Column(_("Open at the end of the month"), "count")])
    for month in result.months:
        months.add([_month_text(month.month), month.registered, month.resolved, month.open_at_end])

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
    names = sorted({dept for dept, _r in result.structure}, key=lambda d: (d is None, _department_label(departments, d)))
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
    filters = _filters(last_twelve_months)
    departments, result = _claims(filters)
    reasons = result.reasons
    charts = [
        _chart("months", _("Claims by month"), "bar", [_month_text(m.month) for m in result.months], [
            _dataset(_("Registered"), [m.registered for m in result.months], "accent"),
            _dataset(_("Resolved"), [m.resolved for m in result.months], "ok"),
            _dataset(_("Open at the end of the month"), [m.open_at_end for m in result.months], "late",
                     type="line"),
        ]),
        _chart("departments", _("Claims by guilty department and resolution"), "bar",
               [_department_label(departments, g.key) for g in result.departments], [
                   *(_dataset(label(resolution), [getattr(g, resolution) for g in result.departments], color)
                     for resolution, color in zip(analytics.RESOLUTIONS, ("ok", "risk", "late"))),
                   _dataset(_("Not resolved yet"), [g.registered - g.resolved for g in result.departments], "muted"),
               ], stacked=True, horizontal=True),
        _chart("resolutions", _("Resolutions by reason"), "bar", [label(g.key) for g in reasons], [
            _dataset(label(resolution), [g.resolution_share(resolution) for g in reasons], color, "share")
            for resolution, color in zip(analytics.RESOLUTIONS, ("ok", "risk", "late"))
        ], stacked=True, horizontal=True),
        _chart("resolution_time", _("Working days to resolve against the time allowed"), "bar",
               [label(g.key) for g in reasons], [
                   _dataset(_("Median to resolve"), [g.median_working_days for g in reasons], "accent", "days"),
                   _dataset(_("90th percentile"), [g.p90_working_days for g in reasons], "muted", "days"),
                   _dataset(_("Median allowed"), [g.median_allowed_working_days for g in reasons], "late", "days",
                            type="line"),
               ]),
    ]
    return _page("analytics/claims.html", filters, None, result=result, charts=charts,
                 tables=_claims_tables(departments, result), departments=departments)


@bp.route("/claims.csv")
@role_required("manager")
def claims_csv():
    departments, result = _claims(_filters(last_twelve_months))
    return _csv("claims", _pick(_claims_tables(departments, result)))


# -- comparison of managers (M2) ----------------------------------------------------------


def _indicators() -> list[str]:
    chosen = [name for name in request.args.getlist("indicator") if name in INDICATORS]
    return chosen or list(INDICATORS)


def _managers(filters: Filters) -> tuple[Audience, list[Period], list[analytics.ManagerRow]]:
    periods = [filters.period, filters.period.previous(), filters.period.year_before()]
    working_days = _working_days(periods)
    with _session() as session:
        audience = _audience(session)
        rows = analytics.compare_managers(session, [period.window(_zone()) for period in periods],
                                          _chosen_people(session, audience, filters), engine().clock(), working_days)
    return audience, periods, rows


def _period_text(period: Period) -> str:
    return f"{format_date(period.first, 'medium')} – {format_date(period.last, 'medium')}"


def _month_text(month: date) -> str:
    return format_date(month, "LLLL yyyy")


def _managers_table(periods: list[Period], rows: list[analytics.ManagerRow], indicators: list[str]) -> Table:
    columns = [Column(_("Manager"))]
    for name in indicators:
        kind, title = INDICATOR_KINDS.get(name, "count"), str(INDICATOR_TITLES[name])
        change = "change_share" if kind == "share" else "change"
        better = "lower" if name in LOWER_IS_BETTER else "higher"
        columns += [Column(_period_text(periods[0]), kind, group=title),
                    *(Column(_("Δ against %(period)s", period=_period_text(period)), change, better, title)
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
    return _chart(f"indicator_{name}", title, "bar", [row.display_name for row in shown], [
        _dataset(legend, [row.periods[index].indicator(name) for row in shown], color,
                 INDICATOR_KINDS.get(name, "count"))
        for index, (legend, color) in enumerate(zip(legends, ("accent", "muted", "pale")))
    ])


@bp.route("/managers")
@role_required("manager")
def managers():
    filters = _filters(last_month)
    indicators = _indicators()
    audience, periods, rows = _managers(filters)
    return _page("analytics/managers.html", filters, audience, extra_args={"indicator": indicators},
                 charts=[_indicator_chart(name, rows) for name in indicators],
                 period_texts=[_period_text(period) for period in periods], indicators=indicators,
                 all_indicators=INDICATORS, indicator_titles=INDICATOR_TITLES,
                 managers_table=_managers_table(periods, rows, indicators))


@bp.route("/managers.csv")
@role_required("manager")
def managers_csv():
    _audience_seen, periods, rows = _managers(_filters(last_month))
    return _csv("managers", _pick([_managers_table(periods, rows, _indicators())]))


# -- the overdue heatmap ------------------------------------------------------------------


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


def _heatmap(filters: Filters, item_limit: int | None) -> tuple[Audience, Heatmap]:
    now = engine().clock()
    with _session() as session:
        audience = _audience(session)
        latest = {definition.key: definition for definition in session.scalars(
            select(ProcessDefinition).options(undefer(ProcessDefinition.sources))
            .order_by(ProcessDefinition.key, ProcessDefinition.version))}
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


def _items_scope(session: Session, audience: Audience, filters: Filters):
    """Open work items of the viewer's department (as on the overdue board), narrowed to
    one employee, or to one department's people and its queue."""
    scope = department_condition(session, current_user)
    if filters.manager:
        return and_(scope, WorkItem.assignee_id.in_(list(_chosen_people(session, audience, filters))))
    if filters.department:
        members = list(_chosen_people(session, audience, filters))
        return and_(scope, or_(WorkItem.assignee_id.in_(members),
                               WorkItem.assignee_id.is_(None) & candidate_filter([filters.department])))
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
    filters = _filters(last_twelve_months)
    audience, result = _heatmap(filters, HEAT_ITEMS_LIMIT)
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
    return _page("analytics/heatmap.html", filters, audience, with_period=False,
                 extra_args={"process": result.process_key, "task": result.task}, heatmap=result, heat=heat,
                 tables=tables,
                 off_diagram=off_diagram, selected=selected, severity_titles=SEVERITY_TITLES)


@bp.route("/heatmap.csv")
@role_required("manager")
def heatmap_csv():
    filters = _filters(last_twelve_months)
    _audience_seen, result = _heatmap(filters, item_limit=None)
    return _csv(f"heatmap-{result.process_key}", _pick(_heat_tables(result, filters)))
