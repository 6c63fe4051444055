"""Work-item queries: whose items, which ones, in what order, how many, one page of them.

Every list of work items (the facade's ``work_items``, the inbox, the overdue board, the
REST API, the analytics' item lists) is a ``WorkItemQuery``: a scope (whose items: those
assigned to some people, a user's queue, the items offered to groups, a manager's
department; several scopes narrow each other) and filters (status, deadline, instance,
search text). All share one order: the soonest deadline first, items without a deadline
last, then the higher priority, then the older item (``ORDER``).

Built for 100,000 open items:

- A person's inbox is two disjoint queries (assigned to them; their queue), each listed on
  its own and merged by ``page_of``: an OR of the two makes the database walk every
  unassigned item. The queue starts from the candidate rows (a few thousand for a busy
  group) and joins the items by key.
- Only keys are sorted (``keys``); the page's items are loaded afterwards by id, with their
  candidates (and instance, when asked): joining instances before the sort would join every
  item of a busy queue.
- A query without a deadline filter is counted per deadline bucket (``Buckets``) by window
  sums over the rows before the LIMIT: the listing and its counts are one pass.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql import ColumnElement, Select

from engine.models import ItemStatus, ProcessInstance, WorkItem, WorkItemCandidate

ORDER = (WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.priority.desc(), WorkItem.id)
_NO_DEADLINE = datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Key:
    """Where an item stands in ``ORDER``: a keyset page's cursor. (``keys`` returns rows
    with the same three attributes.)"""

    due_at: datetime | None
    priority: int
    id: int


def sort_key(item) -> tuple:
    """``ORDER`` in Python, for anything with ``due_at``, ``priority`` and ``id``: no deadline last."""
    return (item.due_at is None, item.due_at or _NO_DEADLINE, -item.priority, item.id)


# -- scopes: whose items ---------------------------------------------------------------------


def _offered_rows(groups: Iterable[str], username: str | None = None) -> ColumnElement[bool]:
    """On candidate rows: offered to one of the groups (or to the user by name)."""
    condition = (WorkItemCandidate.kind == "group") & WorkItemCandidate.name.in_(list(groups))
    if username is not None:
        condition = or_(condition, (WorkItemCandidate.kind == "user") & (WorkItemCandidate.name == username))
    return condition


def _offered(groups: Iterable[str], username: str | None = None) -> ColumnElement[bool]:
    return WorkItem.id.in_(select(WorkItemCandidate.work_item_id).where(_offered_rows(groups, username)))


def _assignee_in(user_ids: Collection[int]) -> ColumnElement[bool]:
    ids = list(user_ids)
    return WorkItem.assignee_id == ids[0] if len(ids) == 1 else WorkItem.assignee_id.in_(ids)


@dataclass(frozen=True)
class AssignedTo:
    user_ids: tuple[int, ...]

    def narrow(self, query: Select) -> Select:
        return query.where(self.condition())

    def condition(self) -> ColumnElement[bool]:
        return _assignee_in(self.user_ids)


@dataclass(frozen=True)
class QueueOf:
    """Unassigned items offered to a user by name or through one of their groups: what
    they may claim."""

    username: str | None
    groups: tuple[str, ...]

    def narrow(self, query: Select) -> Select:
        # From the candidate rows, joined by key: see the module's docstring.
        offered = (select(WorkItemCandidate.work_item_id).where(_offered_rows(self.groups, self.username))
                   .distinct().subquery())
        return query.join(offered, WorkItem.id == offered.c.work_item_id).where(WorkItem.assignee_id.is_(None))

    def condition(self) -> ColumnElement[bool]:
        return WorkItem.assignee_id.is_(None) & _offered(self.groups, self.username)


@dataclass(frozen=True)
class OfferedTo:
    """Items offered to one of the groups (or to the user by name), assigned since or not."""

    groups: tuple[str, ...]
    username: str | None = None

    def narrow(self, query: Select) -> Select:
        return query.where(self.condition())

    def condition(self) -> ColumnElement[bool]:
        return _offered(self.groups, self.username)


@dataclass(frozen=True)
class Department:
    """A manager's department: the items of the given people, and the unassigned items
    offered to the given groups (those the manager heads)."""

    user_ids: tuple[int, ...]
    groups: tuple[str, ...]

    def narrow(self, query: Select) -> Select:
        return query.where(self.condition())

    def condition(self) -> ColumnElement[bool]:
        return or_(WorkItem.assignee_id.in_(list(self.user_ids)),
                   WorkItem.assignee_id.is_(None) & _offered(self.groups))


Scope = AssignedTo | QueueOf | OfferedTo | Department


def assigned_to(*user_ids: int) -> AssignedTo:
    if not user_ids:
        raise ValueError("assigned_to needs at least one user id")
    return AssignedTo(tuple(user_ids))


def queue_of(username: str | None, groups: Iterable[str]) -> QueueOf:
    return QueueOf(username, tuple(groups))


def offered_to(groups: Iterable[str], username: str | None = None) -> OfferedTo:
    return OfferedTo(tuple(groups), username)


def department(user_ids: Iterable[int], groups: Iterable[str]) -> Department:
    return Department(tuple(user_ids), tuple(groups))


# -- deadlines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buckets:
    """The deadline buckets items are counted in: overdue (due before ``now``) and at risk
    (due from ``now`` until ``risk_until``)."""

    now: datetime
    risk_until: datetime

    # Built once: an inbox page uses them in every query of both halves.
    @cached_property
    def overdue(self) -> ColumnElement[bool]:
        return WorkItem.due_at < self.now

    @cached_property
    def at_risk(self) -> ColumnElement[bool]:
        return (WorkItem.due_at >= self.now) & (WorkItem.due_at < self.risk_until)


@dataclass(frozen=True)
class Counts:
    total: int = 0
    overdue: int = 0
    at_risk: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.total + other.total, self.overdue + other.overdue, self.at_risk + other.at_risk)


# -- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItemQuery:
    """Work items within every scope of ``scopes`` (none: everyone's) that pass the filters.

    Build one with the keyword arguments and narrow it with the methods; each returns a new
    query. ``status`` None means any status."""

    scopes: tuple[Scope, ...] = ()
    status: str | None = ItemStatus.OPEN
    instance_id: int | None = None
    ids: tuple[int, ...] | None = None
    search: str | None = None  # in the instance's business key or the item's name
    # Deadline filters, conditions on due_at (see overdue, not_overdue, at_risk, due_before);
    # left out of ==, which SQL expressions would turn into SQL.
    deadline: tuple[ColumnElement[bool], ...] = field(default=(), compare=False)

    # -- narrowing -----------------------------------------------------------------------------

    def within(self, *scopes: Scope) -> WorkItemQuery:
        return replace(self, scopes=self.scopes + scopes)

    def where(self, **filters) -> WorkItemQuery:
        """The same query with other filters: ``status``, ``instance_id``, ``ids``, ``search``."""
        unknown = set(filters) - {"status", "instance_id", "ids", "search"}
        if unknown:
            raise TypeError(f"WorkItemQuery has no filter {', '.join(sorted(unknown))}")
        return replace(self, **filters)

    def overdue(self, at: datetime) -> WorkItemQuery:
        """Due before ``at``."""
        return replace(self, deadline=(WorkItem.due_at < at,))

    def not_overdue(self, at: datetime) -> WorkItemQuery:
        """Without a deadline, or due at ``at`` or later."""
        return replace(self, deadline=(or_(WorkItem.due_at.is_(None), WorkItem.due_at >= at),))

    def at_risk(self, buckets: Buckets) -> WorkItemQuery:
        return replace(self, deadline=(WorkItem.due_at >= buckets.now, WorkItem.due_at < buckets.risk_until))

    def due_before(self, moment: datetime) -> WorkItemQuery:
        """Due before ``moment`` (the overdue board: overdue, or at risk until then)."""
        return replace(self, deadline=(WorkItem.due_at < moment,))

    def without_deadline_filter(self) -> WorkItemQuery:
        return replace(self, deadline=())

    # -- SQL ---------------------------------------------------------------------------------

    def _filters(self) -> list[ColumnElement[bool]]:
        filters = []
        if self.status is not None:
            filters.append(WorkItem.status == self.status)
        if self.instance_id is not None:
            filters.append(WorkItem.instance_id == self.instance_id)
        if self.ids is not None:
            filters.append(WorkItem.id.in_(list(self.ids)))
        if self.search:
            filters.append(_search_condition(self.search))
        return [*filters, *self.deadline]

    def statement(self, *columns) -> Select:
        """``SELECT columns`` (the work item, when none) narrowed to this query, unordered."""
        return self.narrow(select(*columns) if columns else select(WorkItem))

    def narrow(self, query: Select) -> Select:
        """``query``, which selects from ``work_items``, narrowed to this query."""
        for scope in self.scopes:
            query = scope.narrow(query)
        return query.where(*self._filters())

    def condition(self) -> ColumnElement[bool]:
        """This query as one condition on ``work_items``, for aggregations that join other
        tables (the heatmap). Listing goes through ``keys``, which joins the queue's rows."""
        conditions = [scope.condition() for scope in self.scopes] + self._filters()
        return and_(*conditions) if conditions else true()

    # -- reading ---------------------------------------------------------------------------------

    def keys(self, session: Session, limit: int | None = None, after: Key | None = None) -> list[Row]:
        """The items' keys in ``ORDER`` (rows of due_at, priority, id); with ``after``, those that
        follow that key (keyset paging)."""
        query = self.statement(WorkItem.due_at, WorkItem.priority, WorkItem.id)
        if after is not None:
            query = query.where(_after(after))
        return session.execute(query.order_by(*ORDER).limit(limit)).all()

    def keys_and_counts(self, session: Session, limit: int | None, buckets: Buckets,
                        after: Key | None = None) -> tuple[list[Row], Counts]:
        """``keys`` and ``counts`` together: one pass (window sums over the rows before the
        LIMIT) when the query has no deadline filter and no cursor, else the two queries."""
        if self.deadline or after is not None:
            return self.keys(session, limit, after), self.counts(session, buckets)
        overdue, at_risk = _flag(buckets.overdue), _flag(buckets.at_risk)
        rows = session.execute(
            self.statement(WorkItem.due_at, WorkItem.priority, WorkItem.id, func.count().over().label("total"),
                           func.sum(overdue).over().label("overdue"), func.sum(at_risk).over().label("at_risk"))
            .order_by(*ORDER).limit(limit)
        ).all()
        counts = Counts(rows[0].total, rows[0].overdue or 0, rows[0].at_risk or 0) if rows else Counts()
        return rows, counts

    def counts(self, session: Session, buckets: Buckets) -> Counts:
        """How many items, overdue and at risk: the query without its deadline filter (the
        buckets are deadline filters of their own)."""
        unfiltered = self.without_deadline_filter()
        total, overdue, at_risk = session.execute(unfiltered.narrow(select(
            func.count(), func.coalesce(func.sum(_flag(buckets.overdue)), 0),
            func.coalesce(func.sum(_flag(buckets.at_risk)), 0)).select_from(WorkItem))).one()
        return Counts(total, overdue or 0, at_risk or 0)

    def counts_per_assignee(self, session: Session, buckets: Buckets) -> dict[int | None, Counts]:
        """``counts`` per assignee (None: the unassigned items)."""
        unfiltered = self.without_deadline_filter()
        rows = session.execute(unfiltered.statement(
            WorkItem.assignee_id, func.count(), func.sum(_flag(buckets.overdue)), func.sum(_flag(buckets.at_risk)))
            .group_by(WorkItem.assignee_id)).all()
        return {assignee: Counts(total, overdue or 0, risk or 0) for assignee, total, overdue, risk in rows}

    def count(self, session: Session) -> int:
        return session.scalar(self.narrow(select(func.count()).select_from(WorkItem)))

    def items(self, session: Session, limit: int | None = None, offset: int = 0, *,
              with_instance: bool = False) -> list[WorkItem]:
        """The items themselves in ``ORDER``, with their candidates (and instance), in one
        query: for lists that are shown whole, where sorting the keys first saves nothing."""
        query = self.statement().order_by(*ORDER).limit(limit).offset(offset or None)
        return list(session.scalars(query.options(*_loading(with_instance))))


@dataclass(frozen=True)
class Page:
    items: list[WorkItem]
    more: bool  # another page follows
    counts: list[Counts] | None  # per query listed (when buckets were given), without the deadline filter

    @property
    def next_key(self) -> Key | None:
        """The cursor of the next page (keyset paging), None on the last page."""
        if not self.more or not self.items:
            return None
        last = self.items[-1]
        return Key(last.due_at, last.priority, last.id)


def page_of(session: Session, queries: Sequence[WorkItemQuery], *, limit: int, offset: int = 0,
            after: Key | None = None, buckets: Buckets | None = None, with_instance: bool = False) -> Page:
    """One page of the items of ``queries``, which must not overlap (an inbox's two halves):
    each query's keys sorted on their own and merged, then only the page's items loaded,
    with their candidates (and instance). Paging by ``offset``, or by ``after`` (the
    previous page's ``next_key``). With ``buckets``, every query is counted too."""
    wanted = offset + limit + 1  # one more than the page: is there a next one?
    listed, counts = [], []
    for query in queries:
        if buckets is None:
            listed.append(query.keys(session, wanted, after))
        else:
            keys, counted = query.keys_and_counts(session, wanted, buckets, after)
            listed.append(keys)
            counts.append(counted)
    merged = list(heapq.merge(*listed, key=sort_key)) if len(listed) > 1 else (listed[0] if listed else [])
    shown = merged[offset:offset + limit]
    return Page(load(session, [key.id for key in shown], with_instance=with_instance), len(merged) > offset + limit,
                counts if buckets is not None else None)


def load(session: Session, ids: Sequence[int], *, with_instance: bool = False) -> list[WorkItem]:
    """The items of ``ids`` in that order, with their candidates (and instance)."""
    if not ids:
        return []
    loaded = {item.id: item for item in session.scalars(
        select(WorkItem).where(WorkItem.id.in_(list(ids))).options(*_loading(with_instance)))}
    return [loaded[item_id] for item_id in ids if item_id in loaded]


def _loading(with_instance: bool) -> list:
    options = [selectinload(WorkItem.candidates)]
    if with_instance:
        options.append(joinedload(WorkItem.instance))
    return options


def _search_condition(text: str) -> ColumnElement[bool]:
    """The instance's business key (deal or claim number, customer) or the step's name
    contains the text; the wildcards % and _ are taken out of it."""
    pattern = f"%{text.replace('%', '').replace('_', '')}%"
    return or_(
        WorkItem.instance_id.in_(select(ProcessInstance.id).where(ProcessInstance.business_key.ilike(pattern))),
        WorkItem.name.ilike(pattern),
    )


def _after(key: Key) -> ColumnElement[bool]:
    """The items that come after ``key`` in ``ORDER``."""
    later_in_tie = or_(WorkItem.priority < key.priority,
                       and_(WorkItem.priority == key.priority, WorkItem.id > key.id))
    if key.due_at is None:
        return and_(WorkItem.due_at.is_(None), later_in_tie)
    return or_(WorkItem.due_at.is_(None), WorkItem.due_at > key.due_at,
               and_(WorkItem.due_at == key.due_at, later_in_tie))


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)

