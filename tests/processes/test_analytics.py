"""Manager analytics (processes/analytics.py) against a generated history.

A seeded generator writes deals with their stage moves and plans, claims, work items and
escalations straight into the tables; every expected figure is then computed here in
plain Python from the generated records (never from SQL), and compared with what the
database aggregates, on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from alembic import command as alembic_command
from sqlalchemy import literal, select, text, union_all

from engine.db import UTCDateTime, session_factories
from engine.deadlines.calendar import WorkingCalendar
from engine.deadlines.escalation import BREACH, HEAD
from engine.runtime.queries import WorkItemQuery, assigned_to
from processes import analytics
from processes import migrations as crm_migrations
from processes.analytics import Period, Window
from processes.crm.following import move_deal
from processes.migrations import upgrade as upgrade_crm_schema
from processes.models import Deal
from processes.stages import STAGE_CODES
from support import LIBRARY
from support.crm import step
from support.history import (
    CALENDAR,
    NOW,
    PERIOD,
    POSITION,
    RESOLUTIONS,
    SELLERS,
    ZONE,
    History,
    random_moment,
    write_history,
)


@pytest.fixture
def history(engine) -> History:
    for username in ("boss", *SELLERS, "olga"):
        engine.add_user(username, username.title(), roles=["employee", "manager"] if username == "boss" else
                        ["employee"], manager=None if username == "boss" else "boss")
    engine.add_group("sales", "Sales", head="boss", members=list(SELLERS))
    engine.add_group("warehouse", "Warehouse")
    upgrade_crm_schema(engine.db)
    engine.deploy([LIBRARY])
    return write_history(engine)


@pytest.fixture
def working_days(engine):
    return analytics.prepare_working_days(engine.db, CALENDAR, date(2024, 12, 1), date(2027, 2, 1))


def within(moment: datetime | None, window: Window) -> bool:
    return moment is not None and window.start <= moment < window.end


def days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def percentile(values: list[float], numerator: int, denominator: int) -> float | None:
    """Linear interpolation between closest ranks, as statistics.quantiles(inclusive) does."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=denominator, method="inclusive")[numerator - 1] if denominator > 2 \
        else statistics.median(values)


# -- the funnel -----------------------------------------------------------------------------


def expected_funnel(history: History, window: Window, kinds, curators=None):
    cohort = [d for d in history.deals if d["kind"] in kinds and within(d["created_at"], window)
              and (curators is None or d["curator_id"] in curators)]
    entered, reached, converted, lost, stays = Counter(), Counter(), Counter(), Counter(), defaultdict(list)
    for deal in cohort:
        moves = history.moves[deal["id"]]
        for code in {m["to_stage"] for m in moves if m["to_stage"] in STAGE_CODES}:
            entered[code] += 1
        furthest = max(POSITION[m["to_stage"]] for m in moves if m["to_stage"] != "lost")
        for index, code in enumerate(STAGE_CODES):
            reached[code] += furthest >= index
            converted[code] += furthest > index
        if deal["status"] == "lost":
            lost[deal["current_stage"]] += 1
        for move, following in zip(moves, moves[1:]):
            if move["to_stage"] in STAGE_CODES:
                stays[move["to_stage"]].append(days(following["moved_at"] - move["moved_at"]))
    return cohort, entered, reached, converted, lost, stays


@pytest.mark.parametrize("kinds, curators", [(("typical", "manual"), None), (("manual",), None),
                                             (("typical", "manual"), ("ann",))])
def test_the_funnel_counts_entries_conversion_losses_and_time_in_stage(engine, history, kinds, curators):
    window = PERIOD.window(ZONE)
    curator_ids = None if curators is None else [history.users[name] for name in curators]
    cohort, entered, reached, converted, lost, stays = expected_funnel(history, window, kinds, curator_ids)
    with engine.reading() as session:
        funnel = analytics.sales_funnel(session, window, kinds=kinds, curators=curator_ids)

    assert len(cohort) > 10, "the generated period should hold enough deals to mean something"
    assert funnel.deals == len(cohort)
    statuses = Counter(d["status"] for d in cohort)
    assert (funnel.won, funnel.lost, funnel.in_progress) == (statuses["won"], statuses["lost"], statuses["in_progress"])
    assert funnel.revenue_won == sum((d["amount"] for d in cohort if d["status"] == "won"), Decimal("0.00"))
    for stage in funnel.stages:
        code = stage.stage
        assert (stage.entered, stage.reached, stage.converted, stage.lost) == (
            entered[code], reached[code], converted[code], lost[code]), code
        assert stage.conversion == (converted[code] / reached[code] if reached[code] else None)
        assert stage.median_days == pytest.approx(percentile(stays[code], 1, 2), abs=1e-6), code
        assert stage.p90_days == pytest.approx(percentile(stays[code], 9, 10), abs=1e-6), code
    widths = [stage.reached for stage in funnel.stages]
    assert widths == sorted(widths, reverse=True), "a funnel never widens"

    reasons = Counter(d["lost_reason"] for d in cohort if d["status"] == "lost")
    assert [(r.reason, r.deals) for r in funnel.lost_reasons] == sorted(
        reasons.items(), key=lambda pair: (-pair[1], pair[0] or ""))
    running = 0
    for reason in funnel.lost_reasons:
        running += reason.deals
        assert reason.cumulative_share == pytest.approx(running / sum(reasons.values()))
    assert funnel.lost_by_stage == dict(Counter((d["current_stage"], d["lost_reason"])
                                                for d in cohort if d["status"] == "lost"))


def test_manual_deals_that_skip_a_stage_reach_beyond_it_without_entering_it(engine, history):
    window = Period(date(2025, 1, 1), date(2026, 11, 23)).window(ZONE)
    with engine.reading() as session:
        funnel = analytics.sales_funnel(session, window, kinds=("manual",))
    assert any(stage.reached > stage.entered for stage in funnel.stages)


def test_an_empty_cohort_has_an_empty_funnel(engine, history):
    with engine.reading() as session:
        funnel = analytics.sales_funnel(session, Period(date(2020, 1, 1), date(2020, 1, 31)).window(ZONE))
    assert (funnel.deals, funnel.won, funnel.revenue_won, funnel.lost_reasons) == (0, 0, Decimal("0.00"), [])
    assert all(stage.reached == 0 and stage.conversion is None and stage.median_days is None
               for stage in funnel.stages)


# -- percentiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 10, 11, 37])
def test_percentiles_in_sql_match_linear_interpolation(engine, size):
    rng = random.Random(size)
    values = [round(rng.uniform(0, 100), 3) for _ in range(size)]
    samples = union_all(*(select(literal("g").label("key"), literal(value).label("value")) for value in values),
                        select(literal("other").label("key"), literal(1.0).label("value"))).subquery()
    with engine.reading() as session:
        result = analytics.percentiles(session, samples, (analytics.MEDIAN, analytics.P90))
    assert result["g"][0] == pytest.approx(statistics.median(values))
    assert result["g"][1] == pytest.approx(percentile(values, 9, 10))
    assert result["other"] == [1.0, 1.0]


# -- plan against fact ----------------------------------------------------------------------


def test_deals_behind_plan_by_stage_worst_first(engine, history):
    today = NOW.astimezone(ZONE).date()
    plans = {(p["deal_id"], p["stage"]): p["planned_end"] for p in history.plans}
    running = [d for d in history.deals if d["status"] == "in_progress"]
    behind = sorted(((today - plans[d["id"], d["current_stage"]]).days, d["id"]) for d in running
                    if plans[d["id"], d["current_stage"]] < today)
    behind.sort(key=lambda pair: (-pair[0], pair[1]))
    with engine.reading() as session:
        listed = analytics.deals_behind(session, today)
        stages = analytics.deals_behind_by_stage(session, today)
        top = analytics.deals_behind(session, today, curators=[history.users["bob"]], limit=3)
    assert [(d.days_behind, d.deal_id) for d in listed] == behind
    assert len(behind) >= 5
    by_stage = defaultdict(list)
    for lateness, deal_id in behind:
        by_stage[next(d["current_stage"] for d in running if d["id"] == deal_id)].append(lateness)
    expected = {code: (sum(1 for d in running if d["current_stage"] == code), len(by_stage[code]),
                       statistics.median(by_stage[code]) if by_stage[code] else None, max(by_stage[code], default=None))
                for code in STAGE_CODES if any(d["current_stage"] == code for d in running)}
    assert {s.stage: (s.open, s.behind, s.median_days, s.max_days) for s in stages} == expected
    bobs = [deal_id for _, deal_id in behind
            if next(d for d in running if d["id"] == deal_id)["curator_id"] == history.users["bob"]]
    assert [d.deal_id for d in top] == bobs[:3]


def test_claims_past_their_response_deadline_in_working_days(engine, history, working_days):
    open_claims = [c for c in history.claims if c["status"] != "closed"]
    late = sorted((c for c in open_claims if c["response_due_at"] < NOW),
                  key=lambda c: (c["response_due_at"], c["id"]))
    with engine.reading() as session:
        listed = analytics.claims_behind(session, NOW, working_days)
        by_status = analytics.claims_behind_by_status(session, NOW, working_days)
        olgas = analytics.claims_behind(session, NOW, working_days, officers=["olga"])
    assert [(c.claim_id, c.working_days_late) for c in listed] == [
        (c["id"], CALENDAR.working_days_late(c["response_due_at"], NOW)) for c in late]
    assert [c.claim_id for c in olgas] == [c["id"] for c in late if c["responsible_officer"] in ("olga", None)]
    statuses = Counter(c["status"] for c in open_claims)
    lateness = defaultdict(list)
    for claim in late:
        lateness[claim["status"]].append(CALENDAR.working_days_late(claim["response_due_at"], NOW))
    assert {s.stage: (s.open, s.behind, s.median_days, s.max_days) for s in by_status} == {
        status: (count, len(lateness[status]), statistics.median(lateness[status]) if lateness[status] else None,
                 max(lateness[status], default=None)) for status, count in statuses.items()}


# -- claims ---------------------------------------------------------------------------------


@pytest.mark.parametrize("department", [None, "warehouse"])
def test_claims_by_month_department_reason_and_resolution_time(engine, history, working_days, department):
    claims = [c for c in history.claims if department is None or c["guilty_department"] == department]
    with engine.reading() as session:
        result = analytics.claims_analytics(session, PERIOD, ZONE, working_days, department=department)

    months = PERIOD.months()
    assert [m.month for m in result.months] == [date(2026, month, 1) for month in range(5, 11)]
    for month, figures in zip(months, result.months):
        window = month.window(ZONE)
        assert figures.registered == sum(within(c["registered_at"], window) for c in claims)
        assert figures.resolved == sum(within(c["resolved_at"], window) for c in claims)
        assert figures.open_at_end == sum(c["registered_at"] < window.end and
                                          (c["closed_at"] is None or c["closed_at"] >= window.end) for c in claims)

    cohort = [c for c in claims if within(c["registered_at"], PERIOD.window(ZONE))]

    def expected(group):
        resolved = [c for c in group if c["resolved_at"]]
        took = [CALENDAR.working_days_late(c["registered_at"], c["resolved_at"]) for c in resolved]
        allowed = [CALENDAR.working_days_late(c["registered_at"], c["response_due_at"]) for c in group]
        return (len(group), len(resolved), sum(c["status"] != "closed" for c in group),
                *(sum(c["resolution"] == r for c in group) for r in RESOLUTIONS),
                sum(c["resolved_at"] <= c["response_due_at"] for c in resolved),
                percentile(took, 1, 2), percentile(took, 9, 10), percentile(allowed, 1, 2))

    def actual(group):
        return (group.registered, group.resolved, group.open, group.satisfied, group.partly_satisfied, group.rejected,
                group.on_time, group.median_working_days, group.p90_working_days, group.median_allowed_working_days)

    assert actual(result.total) == pytest.approx(expected(cohort))
    for attribute, key in (("departments", "guilty_department"), ("reasons", "reason")):
        groups = defaultdict(list)
        for claim in cohort:
            groups[claim[key]].append(claim)
        assert {g.key for g in getattr(result, attribute)} == set(groups), attribute
        for group in getattr(result, attribute):
            assert actual(group) == pytest.approx(expected(groups[group.key])), (attribute, group.key)
        assert [g.registered for g in getattr(result, attribute)] == sorted(map(len, groups.values()), reverse=True)
    assert result.structure == dict(Counter((c["guilty_department"], c["reason"]) for c in cohort))
    reason = result.reasons[0]
    assert reason.resolution_share("satisfied") == reason.satisfied / reason.resolved


# -- comparison of managers -----------------------------------------------------------------


def expected_figures(history: History, user_id: int, window: Window) -> dict:
    deals = [d for d in history.deals if d["curator_id"] == user_id]
    won = [d for d in deals if d["status"] == "won" and within(d["closed_at"], window)]
    items = [i for i in history.items if i["assignee_id"] == user_id and i["status"] != "cancelled"
             and within(i["due_at"], window)]
    late = [i for i in items if (i["completed_at"] and i["completed_at"] > i["due_at"])
            or (i["completed_at"] is None and i["due_at"] < NOW)]
    return {
        "deals_started": sum(within(d["created_at"], window) for d in deals),
        "won": len(won),
        "lost": sum(d["status"] == "lost" and within(d["closed_at"], window) for d in deals),
        "revenue": sum((d["amount"] for d in won), Decimal("0.00")),
        "items_due": len(items),
        "items_late": len(late),
        "working_days_late": sum(CALENDAR.working_days_late(i["due_at"], i["completed_at"] or NOW) for i in late),
        # Counted for whoever held the item when the rung fired.
        "escalations": sum(e["status"] == "done" and e["level"] in (BREACH, HEAD) and e["assignee_id"] == user_id
                           and within(e["due_at"], window) for e in history.escalations),
        "claims_caused": sum(c["guilty_employee_id"] == user_id and within(c["registered_at"], window)
                             for c in history.claims),
    }


def test_managers_against_the_previous_period_and_the_year_before(engine, history, working_days):
    periods = [PERIOD, PERIOD.previous(), PERIOD.year_before()]
    assert periods[1:] == [Period(date(2025, 11, 1), date(2026, 4, 30)), Period(date(2025, 5, 1), date(2025, 10, 31))]
    windows = [period.window(ZONE) for period in periods]
    people = [history.users[name] for name in (*SELLERS, "olga", "boss")]
    with engine.reading() as session:
        rows = analytics.compare_managers(session, windows, people, NOW, working_days)

    by_user = {row.user_id: row for row in rows}
    assert history.users["boss"] not in by_user, "nobody without a figure is listed"
    for name in (*SELLERS, "olga"):
        row = by_user[history.users[name]]
        expected = [expected_figures(history, row.user_id, window) for window in windows]
        assert [vars(figures) for figures in row.periods] == expected, name
        current, previous, year_before = expected
        for indicator in ("deals_started", "won", "revenue", "escalations"):
            assert row.change(indicator, 1) == current[indicator] - previous[indicator]
            assert row.change(indicator, 2) == current[indicator] - year_before[indicator]
        conversion = [e["won"] / (e["won"] + e["lost"]) if e["won"] + e["lost"] else None for e in expected]
        assert [f.conversion for f in row.periods] == conversion
        assert row.change("conversion", 1) == (None if None in conversion[:2] else
                                               pytest.approx(conversion[0] - conversion[1]))
        assert [f.overdue_rate for f in row.periods] == [
            e["items_late"] / e["items_due"] if e["items_due"] else None for e in expected]
        assert [f.avg_working_days_late for f in row.periods] == [
            e["working_days_late"] / e["items_late"] if e["items_late"] else None for e in expected]
    assert sum(row.periods[0].working_days_late for row in rows) > 0
    assert sum(row.periods[0].escalations for row in rows) > 0
    assert sum(row.periods[0].claims_caused for row in rows) > 0


def test_overlapping_windows_each_count_all_their_rows(engine, history, working_days):
    windows = [PERIOD.window(ZONE), Period(date(2026, 8, 1), date(2026, 11, 30)).window(ZONE), PERIOD.window(ZONE)]
    people = [history.users[name] for name in SELLERS]
    with engine.reading() as session:
        rows = analytics.compare_managers(session, windows, people, NOW, working_days)
    assert {row.user_id for row in rows} == set(people)
    for row in rows:
        expected = [expected_figures(history, row.user_id, window) for window in windows]
        assert [vars(figures) for figures in row.periods] == expected


def test_periods_of_whole_months_compare_with_the_months_before():
    assert Period(date(2026, 3, 1), date(2026, 3, 31)).previous() == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert Period(date(2026, 1, 1), date(2026, 3, 31)).previous() == Period(date(2025, 10, 1), date(2025, 12, 31))
    assert Period(date(2026, 3, 10), date(2026, 3, 19)).previous() == Period(date(2026, 2, 28), date(2026, 3, 9))
    assert Period(date(2028, 2, 29), date(2028, 3, 1)).year_before() == Period(date(2027, 2, 28), date(2027, 3, 1))
    assert Period(date(2026, 1, 15), date(2026, 3, 2)).months() == [
        Period(date(2026, 1, 15), date(2026, 1, 31)), Period(date(2026, 2, 1), date(2026, 2, 28)),
        Period(date(2026, 3, 1), date(2026, 3, 2))]
    assert Period(date(2026, 3, 29), date(2026, 3, 29)).window(ZoneInfo("Europe/Berlin")) == Window(
        datetime(2026, 3, 28, 23, tzinfo=timezone.utc), datetime(2026, 3, 29, 22, tzinfo=timezone.utc))


# -- working days ---------------------------------------------------------------------------


def test_working_days_in_sql_are_the_calendars_own(engine):
    """Holidays, weekends, the time zone's day boundaries, and a calendar asked for a
    wider range later keeps numbering consecutively."""
    upgrade_crm_schema(engine.db)
    working_days = analytics.prepare_working_days(engine.db, CALENDAR, date(2026, 12, 20), date(2027, 2, 20))
    analytics.prepare_working_days(engine.db, CALENDAR, date(2026, 10, 1), date(2026, 12, 25))
    rng = random.Random(7)
    pairs = []
    for _ in range(40):
        earlier = random_moment(rng, datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2027, 1, 10, tzinfo=timezone.utc))
        pairs.append((earlier, earlier + timedelta(hours=rng.randrange(0, 24 * 30))))
    pairs.append((datetime(2026, 12, 30, 20, 59, tzinfo=timezone.utc), datetime(2027, 1, 12, 21, 1, tzinfo=timezone.utc)))
    with engine.reading() as session:
        counted = [session.scalar(select(working_days.between(literal(a, UTCDateTime()), literal(b, UTCDateTime()))))
                   for a, b in pairs]
    assert counted == [CALENDAR.working_days_late(a, b) for a, b in pairs]
    # The New Year holidays: due on 30 December (a Wednesday), done on 12 January.
    assert counted[-1] == CALENDAR.working_days_late(*pairs[-1]) == 3


def test_working_days_of_many_rows_in_sql_are_the_calendars_own(engine):
    """``numbered``, for many rows at once: on PostgreSQL by joining each moment's day in
    the calendar's time zone, a moment at a day's very start falling in that day."""
    upgrade_crm_schema(engine.db)
    working_days = analytics.prepare_working_days(engine.db, CALENDAR, date(2026, 10, 1), date(2027, 2, 20))
    rng = random.Random(8)
    day_starts = [datetime(2026, 12, 30, 21, tzinfo=timezone.utc), datetime(2027, 1, 12, 21, tzinfo=timezone.utc)]
    pairs = [(day_starts[0], day_starts[1]), (day_starts[0] - timedelta(microseconds=1), day_starts[1]),
             (day_starts[0], day_starts[1] - timedelta(microseconds=1))]
    start, end = datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2027, 1, 10, tzinfo=timezone.utc)
    for earlier in (random_moment(rng, start, end) for _ in range(40)):
        pairs.append((earlier, earlier + timedelta(hours=rng.randrange(0, 24 * 30))))
    spans = union_all(*(select(literal(n).label("n"), literal(a, UTCDateTime()).label("earlier"),
                               literal(b, UTCDateTime()).label("later")) for n, (a, b) in enumerate(pairs))).subquery()
    with engine.reading() as session:
        query, (earlier, later) = working_days.numbered(session, select(spans.c.n), spans.c.earlier, spans.c.later)
        counted = dict(session.execute(query.add_columns(later - earlier)).all())
    assert counted == {n: CALENDAR.working_days_late(a, b) for n, (a, b) in enumerate(pairs)}
    assert counted[0] == counted[2] + 1  # the later moment a microsecond before its day


def test_a_changed_calendar_gets_rows_of_its_own(engine):
    upgrade_crm_schema(engine.db)
    saturdays = WorkingCalendar(extra_working_days=frozenset({date(2026, 11, 28)}))
    first = analytics.prepare_working_days(engine.db, CALENDAR, date(2026, 11, 1), date(2026, 11, 30))
    second = analytics.prepare_working_days(engine.db, saturdays, date(2026, 11, 1), date(2026, 11, 30))
    assert first.key != second.key
    due, done = datetime(2026, 11, 27, 12, tzinfo=timezone.utc), datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    with engine.reading() as session:
        assert session.scalar(select(first.between(literal(due, UTCDateTime()), literal(done, UTCDateTime())))) == 1
        assert session.scalar(select(second.between(literal(due, UTCDateTime()), literal(done, UTCDateTime())))) == 2


# -- the heatmap ----------------------------------------------------------------------------


@pytest.mark.parametrize("only", [None, "ann"])
def test_the_heatmap_counts_open_and_overdue_items_per_task(engine, history, only):
    deals = {d["id"]: d for d in history.deals}
    items = [i for i in history.items if i["status"] == "open" and deals[i["instance_id"]]["kind"] == "typical"
             and (only is None or i["assignee_id"] == history.users[only])]
    scope = None if only is None else WorkItemQuery().within(assigned_to(history.users[only]))
    with engine.reading() as session:
        heat = analytics.overdue_heatmap(session, "typical_sale", NOW, scope)
        total, listed = analytics.heatmap_items(session, "typical_sale", "first_contact", scope, limit=5)
    per_task = defaultdict(list)
    for item in items:
        per_task[item["task_spec"]].append(item)
    assert {t.task_spec: (t.open_items, t.overdue) for t in heat} == {
        task: (len(group), sum(i["due_at"] < NOW for i in group)) for task, group in per_task.items()}
    for task in heat:
        group = per_task[task.task_spec]
        assert task.median_age_days == pytest.approx(statistics.median(days(NOW - i["created_at"]) for i in group))
        overdue = [days(NOW - i["due_at"]) for i in group if i["due_at"] < NOW]
        assert task.max_days_overdue == (pytest.approx(max(overdue)) if overdue else None)
        share = task.overdue / task.open_items
        assert task.severity == ("none" if not task.overdue else "high" if share >= 0.5 else
                                 "medium" if share >= 0.25 else "low")
    shares = [t.overdue_share for t in heat]
    assert shares == sorted(shares, reverse=True)
    first_contact = sorted(per_task["first_contact"], key=lambda i: (i["due_at"], -i["priority"], i["id"]))
    assert total == len(first_contact)
    assert [i.id for i in listed] == [i["id"] for i in first_contact[:5]]


def funnel_facts(engine) -> list[tuple]:
    with engine.db.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT deal_moves.to_stage, deal_moves.stay_days, deal_moves.first_entry, deal_moves.deal_kind,"
            " deal_moves.deal_created_at, deals.furthest_stage"
            " FROM deal_moves JOIN deals ON deals.id = deal_moves.deal_id ORDER BY deal_moves.id"))]


def test_each_move_keeps_what_the_funnel_derives_from_it(crm, customer):
    """When ``processes.crm`` records a move it ends the stay that the deal's move before
    began (``stay_days``, to the moment of this move), marks a first entry into a stage,
    copies the deal's kind and opening, and moves the deal's furthest stage on; forward,
    back (with its reason) and a skip to won. Migration 0003 derives the same for the
    moves recorded before it."""
    deal = crm.start_deal("manual", customer.id, "ann", "Warehouse racks", by="ann")
    step(crm.engine, deal.instance_id, "ann", next_stage="needs_analysis")
    step(crm.engine, deal.instance_id, "ann", next_stage="first_contact")  # back: asks why
    step(crm.engine, deal.instance_id, "ann", move_reason="the customer changed their mind")
    assert crm.deal(deal.id).furthest_stage == "needs_analysis"
    step(crm.engine, deal.instance_id, "ann", next_stage="needs_analysis")
    step(crm.engine, deal.instance_id, "ann", next_stage="won")  # a skip to won: asks why
    assert step(crm.engine, deal.instance_id, "ann", move_reason="repeat order, paid upfront") == []

    moves = crm.deal_moves(deal.id)
    assert [move.to_stage for move in moves] == ["first_contact", "needs_analysis", "first_contact",
                                                 "needs_analysis", "won"]
    assert [move.stay_days for move in moves] == [
        *((later.moved_at - move.moved_at).total_seconds() / 86400 for move, later in zip(moves, moves[1:])), None]
    assert [move.first_entry for move in moves] == [True, True, False, False, True]
    opened = crm.deal(deal.id)
    assert {(move.deal_kind, move.deal_created_at) for move in moves} == {("manual", opened.created_at)}
    assert opened.furthest_stage == "won"

    recorded = funnel_facts(crm.engine)
    alembic_command.downgrade(crm_migrations.alembic_config(crm.engine.db), "0002")
    upgrade_crm_schema(crm.engine.db)
    derived = funnel_facts(crm.engine)
    assert [row[:1] + row[2:] for row in derived] == [row[:1] + row[2:] for row in recorded]
    assert [row[1] for row in derived] == pytest.approx([row[1] for row in recorded], abs=1e-6)


def test_two_moves_in_one_step_each_end_the_stay_before(crm, customer):
    """An engine step's session does not autoflush; a step that moves a deal twice (a stage,
    then won) still ends each stay at the next move and counts first entries right."""
    deal = crm.start_deal("manual", customer.id, "ann", "Warehouse racks", by="ann")
    started = crm.deal(deal.id).stage_entered_at
    _read, write = session_factories(crm.engine.db)
    with write.begin() as session:
        moving = session.get(Deal, deal.id)
        move_deal(session, moving, "needs_analysis", "ann", started + timedelta(days=1), None)
        move_deal(session, moving, "first_contact", "ann", started + timedelta(days=3), "asked again")
    moves = crm.deal_moves(deal.id)
    assert [(move.to_stage, move.stay_days, move.first_entry) for move in moves] == [
        ("first_contact", pytest.approx(1), True), ("needs_analysis", pytest.approx(2), True),
        ("first_contact", None, False)]
    assert crm.deal(deal.id).furthest_stage == "needs_analysis"
