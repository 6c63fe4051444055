"""The period a page shows, its filters, whose figures the viewer may see (the audience),
and the page around them (its links keep the filters)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, render_template, request, url_for
from flask_babel import format_date, get_timezone
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session

from processes import analytics
from processes.analytics import FUNNEL_KINDS, Period, WorkingDays
from webui import readmodel
from webui.access import engine

MAX_PERIOD_DAYS = 5 * 366
# Working days are counted up to deadlines that fall after the period (a claim registered
# on its last day is due ten working days later): the calendar table covers them too.
CALENDAR_MARGIN = timedelta(days=62)


def local_zone() -> ZoneInfo:
    return ZoneInfo(str(get_timezone()))


def local_today() -> date:
    return engine().clock().astimezone(local_zone()).date()


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


def filters_from_request(default: Callable[[date], Period]) -> Filters:
    today = local_today()
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


def audience_of(session: Session) -> Audience:
    person = current_user
    if person.is_admin:
        people, departments = readmodel.people_named(session, None), readmodel.departments(session)
    else:
        ids = readmodel.team_ids(session, person) | {person.id}
        people, departments = readmodel.people_named(session, ids), readmodel.departments_of(session, person.id, ids)
    return Audience(everyone=person.is_admin, people=people, departments=departments)


def chosen_people(session: Session, audience: Audience, filters: Filters) -> Collection[int] | None:
    """The people the filters pick within the audience; None when that is everyone."""
    if filters.manager:
        chosen = [user_id for user_id, (username, _name) in audience.people.items() if username == filters.manager]
        if not chosen:
            abort(403 if readmodel.user_exists(session, filters.manager) else 404)
        return chosen
    if filters.department:
        if filters.department not in audience.departments:
            abort(404)
        members = readmodel.member_ids(session, filters.department)
        return members if audience.everyone else members & audience.ids
    return None if audience.everyone else audience.ids


@contextmanager
def analysis_session() -> Iterator[Session]:
    with engine().reading() as session:
        yield analytics.for_analysis(session)


def working_days_for(periods: Iterable[Period]) -> WorkingDays:
    periods = list(periods)
    first = min(period.first for period in periods) - timedelta(days=1)
    last = max([period.last for period in periods] + [local_today()]) + CALENDAR_MARGIN
    return analytics.prepare_working_days(engine().db, engine().working_calendar, first, last)


def render_page(template: str, filters: Filters, audience: Audience | None, *, with_period: bool = True,
                extra_args: dict[str, Any] | None = None, **context: Any) -> str:
    """Render an analytics page; ``link(endpoint, **changes)`` in the template keeps the
    page's filters (and ``extra_args``) in every link, the CSV downloads among them."""
    page_args = filters.args(with_period=with_period) | (extra_args or {})

    def link(endpoint: str, **changes: Any) -> str:
        return url_for(endpoint, **(page_args | changes))

    preset_links = [(title, link(request.endpoint, **{"from": period.first.isoformat(), "to": period.last.isoformat()}),
                     period == filters.period) for title, period in presets(local_today())]
    return render_template(template, filters=filters, audience=audience, presets=preset_links, link=link,
                           with_period=with_period, **context)


def period_text(period: Period) -> str:
    return f"{format_date(period.first, 'medium')} – {format_date(period.last, 'medium')}"


def month_text(month: date) -> str:
    return format_date(month, "LLLL yyyy")
