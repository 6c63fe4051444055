"""The analytics pages' tables and charts: a chart first, the table behind it second, every
table a CSV download; numbers and cells formatted in the user's locale."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from flask import Response, abort, request
from babel import dates as babel_dates
from babel.numbers import NumberPattern, parse_pattern
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape

from webui.i18n import Dates


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


def chart(name: str, title: str, kind: str, labels: Sequence[str], datasets: list[dict[str, Any]],
          **options: Any) -> dict[str, Any]:
    """What static/analytics.js draws: Chart.js's bar or line chart from plain data.
    A dataset may say its ``axis`` (count, share, days, money), its ``type`` (line on a
    bar chart) and its ``color`` (one of the palette's names)."""
    return {"name": name, "title": title, "type": kind, "labels": [str(text) for text in labels],
            "datasets": datasets, "options": options}


def dataset(label_text: str, data: Iterable[Any], color: str, axis: str = "count", **extra: Any) -> dict[str, Any]:
    return {"label": str(label_text), "data": [_plain(value) for value in data], "color": color, "axis": axis,
            **extra}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def csv_download(filename: str, table: Table) -> Response:
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


def pick_table(tables: Iterable[Table]) -> Table:
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
