"""Manager analytics: the sales funnel (S5), plan against fact (D4, M1), claims (C6), the
comparison of managers (M2) and the overdue heatmap of a process diagram.

Every figure is computed by the database with SQL aggregation that runs unchanged on
SQLite and PostgreSQL; Python only shapes the few aggregate rows that come back. The
building blocks that the two backends spell differently (``sql``, ``working_days``):

- ``days_between``: the time between two moments in (fractional) days: SQLite's
  ``julianday`` difference, PostgreSQL's epoch of the interval;
- percentiles (``sql.percentiles``): linear interpolation between the two ranks around
  ``(n - 1) * p`` (Python's ``statistics.quantiles(..., method="inclusive")``):
  PostgreSQL's own ``percentile_cont``; on SQLite, which has no percentile aggregate, one
  that ``engine.db`` registers;
- months: local calendar months as a ``CASE`` over their UTC boundaries, so no backend
  needs a time-zone database;
- working days: the company's working calendar (``engine.calendar``) is written to the
  table ``analytics_calendar_days``, one row per day with the number of working days so
  far, and a moment's number is looked up by its day's start (an index seek; for many
  rows on PostgreSQL, joined on the moment's day in the calendar's time zone): working
  days late = number(when it was done, or now) - number(when it was due), exactly what
  ``WorkingCalendar.working_days_late`` counts, holidays and time zone included.

Periods are cohorts where a cohort is meant: the funnel follows the deals *opened* in the
period and the claims' structure the claims *registered* in it; the monthly claim counts,
the comparison of managers and the heatmap count events when they happened.

Modules: ``sql`` (the building blocks and the backends' spellings), ``periods``, ``working_days``,
``funnel`` (S5), ``plan`` (plan against fact), ``claims`` (C6), ``managers`` (M2), ``heatmap``.
What the pages need is importable from the package itself.
"""

from processes.analytics.claims import RESOLUTIONS, ClaimsAnalytics, ClaimsGroup, ClaimsMonth, claims_analytics
from processes.analytics.funnel import FUNNEL_KINDS, Funnel, FunnelStage, LostReason, sales_funnel
from processes.analytics.heatmap import HeatItem, TaskHeat, heatmap_items, overdue_heatmap
from processes.analytics.managers import INDICATORS, ManagerFigures, ManagerRow, compare_managers
from processes.analytics.periods import Period, Window
from processes.analytics.plan import (
    ClaimBehind,
    DealBehind,
    StageBehind,
    claims_behind,
    claims_behind_by_status,
    deals_behind,
    deals_behind_by_stage,
    oldest_open_claim_deadline,
)
from processes.analytics.sql import MEDIAN, P90, for_analysis, percentiles
from processes.analytics.working_days import CalendarDay, WorkingDays, calendar_key, prepare_working_days

__all__ = [
    "FUNNEL_KINDS", "INDICATORS", "MEDIAN", "P90", "RESOLUTIONS", "CalendarDay", "ClaimBehind", "ClaimsAnalytics",
    "ClaimsGroup", "ClaimsMonth", "DealBehind", "Funnel", "FunnelStage", "HeatItem", "LostReason", "ManagerFigures",
    "ManagerRow", "Period", "StageBehind", "TaskHeat", "Window", "WorkingDays", "calendar_key", "claims_analytics",
    "claims_behind", "claims_behind_by_status", "compare_managers", "deals_behind", "deals_behind_by_stage",
    "for_analysis", "heatmap_items", "oldest_open_claim_deadline", "overdue_heatmap", "percentiles",
    "prepare_working_days", "sales_funnel",
]
