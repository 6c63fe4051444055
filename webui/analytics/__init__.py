"""Managers: the analytics pages. The sales funnel (S5), plan against fact (D4, M1), claims
(C6), the comparison of managers (M2) and the overdue heatmap on a process diagram.

Every page shows a chart first and the table behind it second, and every table is a CSV
download (``<page>.csv?table=<name>`` with the page's filters). The figures come from
``processes.analytics`` (SQL aggregation); this package picks the period, limits the figures
to the people the viewer is responsible for, and presents them: ``tables`` (tables, charts,
CSV, the locale's formats), ``filters`` (the period, the filters, whose figures, the page
around them), and a module per page (``funnel``, ``plan``, ``claims``, ``managers``,
``heatmap``).

Who sees what: managers the deals, work and escalations of their team (``readmodel.team_ids``:
reports down the line and members of the groups they head) and their own; admins everyone's.
The claims analytics (C6) are company-wide figures about departments and reasons, for every
manager; the list of late claims follows the responsible officers of the viewer's team.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, url_for

from webui.access import role_required
from webui.analytics.tables import Formats

bp = Blueprint("analytics", __name__, url_prefix="/analytics")


@bp.context_processor
def formatting() -> dict[str, Any]:
    formats = Formats()
    return {"share": formats.share, "days": formats.days, "money": formats.money, "change": formats.change,
            "day": formats.day, "cell": formats.cell}


@bp.route("/")
@role_required("manager")
def index():
    return redirect(url_for("analytics.funnel"))


# The pages register their routes on bp.
from webui.analytics import claims, funnel, heatmap, managers, plan  # noqa: E402,F401
