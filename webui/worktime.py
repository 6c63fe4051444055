"""Working days: Monday to Friday. The engine's due dates are calendar moments; how late
an item is and whether it is at risk are counted in working days, as managers count them.
(Public holidays need a company calendar, which the escalation work brings.)"""

from __future__ import annotations

from datetime import date, datetime, timedelta

SATURDAY = 5


def is_working_day(day: date) -> bool:
    return day.weekday() < SATURDAY


def working_days_late(due: datetime, now: datetime) -> int:
    """Working days from the day after ``due`` up to and including today: an item due on
    Friday is 1 working day late on Monday, 0 later on Friday itself."""
    if now <= due:
        return 0
    days, day = 0, due.date() + timedelta(days=1)
    while day <= now.date():
        days += is_working_day(day)
        day += timedelta(days=1)
    return days


def one_working_day_after(now: datetime) -> datetime:
    """The same time on the next working day: items due before it are "at risk"."""
    moment = now + timedelta(days=1)
    while not is_working_day(moment.date()):
        moment += timedelta(days=1)
    return moment
