"""The work-item query object (engine/runtime/queries.py) against a Python reference: scopes,
filters, the one order, counts per deadline bucket, and paging by offset and by key."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert, select

from engine.models import ProcessDefinition, ProcessInstance, User, WorkItem, WorkItemCandidate
from engine.runtime.queries import (
    Buckets,
    Counts,
    Key,
    WorkItemQuery,
    assigned_to,
    department,
    offered_to,
    page_of,
    queue_of,
    sort_key,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
BUCKETS = Buckets(NOW, NOW + timedelta(days=1))
ITEMS = 240


@pytest.fixture
def yard(company):
    """ITEMS work items with every combination the queries tell apart: due dates in the past,
    soon, later and none, with ties; three priorities; assigned to ann, bob or eve, or not;
    offered to groups and users; open, completed and cancelled; two kinds of business key."""
    engine = company
    rng = random.Random(13)
    with engine.reading() as session:
        users = dict(session.execute(select(User.username, User.id)).all())
        definition_id = session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == "approval"))
    dues = [None, NOW - timedelta(days=2), NOW - timedelta(hours=1), NOW + timedelta(hours=3), NOW + timedelta(days=3)]
    items, candidates = [], []
    for n in range(1, ITEMS + 1):
        assignee = rng.choice([None, None, "ann", "bob", "eve"])
        due = rng.choice(dues) if rng.random() < 0.5 else NOW + timedelta(minutes=rng.randrange(-4000, 4000))
        items.append({
            "id": n, "instance_id": (n - 1) // 4 + 1, "task_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "task_spec": "request", "name": rng.choice(["Request discount", "Review discount", "Call 100%_back"]),
            "stage": "Negotiation", "assignee_id": users[assignee] if assignee else None,
            "priority": rng.choice([30, 50, 70]), "status": rng.choice(["open"] * 4 + ["completed", "cancelled"]),
            "version": 1, "created_at": NOW - timedelta(days=5), "due_at": due,
            "completed_by_id": None,
        })
        for kind, name in {rng.choice([("group", "sales"), ("group", "heads"), ("user", "ann"), ("user", "eve")])
                           for _ in range(rng.randrange(0, 3))}:
            candidates.append({"work_item_id": n, "kind": kind, "name": name})
    with engine.db.begin() as connection:
        connection.execute(insert(ProcessInstance), [
            {"id": i, "definition_id": definition_id, "process_key": "approval",
             "business_key": f"DEAL-{i} Romashka" if i % 2 else f"CLAIM-{i} Vasilek", "status": "running",
             "state": "", "version": 1, "started_at": NOW, "updated_at": NOW}
            for i in range(1, ITEMS // 4 + 1)])
        connection.execute(insert(WorkItem), items)
        connection.execute(insert(WorkItemCandidate), candidates)
    offered = {}
    for row in candidates:
        offered.setdefault(row["work_item_id"], set()).add((row["kind"], row["name"]))
    keys = {i["instance_id"]: f"DEAL-{i['instance_id']} Romashka" if i["instance_id"] % 2 else
            f"CLAIM-{i['instance_id']} Vasilek" for i in items}
    return engine, users, [Row(item, offered.get(item["id"], set()), keys[item["instance_id"]]) for item in items]


class Row:
    """One generated item as the reference sees it."""

    def __init__(self, item, offered, business_key):
        self.__dict__.update(item)
        self.offered = offered
        self.business_key = business_key

    def offered_to(self, groups=(), username=None):
        return any(kind == "group" and name in groups or kind == "user" and name == username
                   for kind, name in self.offered)


def expected(rows, keep) -> list[int]:
    return [row.id for row in sorted((row for row in rows if keep(row)), key=sort_key)]


def ids(items) -> list[int]:
    return [item.id for item in items]


def test_the_order_is_the_soonest_deadline_first_no_deadline_last_then_priority_then_id(yard):
    engine, _users, rows = yard
    with engine.reading() as session:
        keys = WorkItemQuery(status=None).keys(session)
        items = WorkItemQuery(status=None).items(session)
    assert [key.id for key in keys] == ids(items) == expected(rows, lambda row: True)
    assert any(row.due_at is None for row in rows) and keys[-1].due_at is None
    ties = [key for key in keys if key.due_at == NOW - timedelta(days=2)]
    assert len({key.priority for key in ties}) > 1  # the data holds ties that priority and id break


def test_scopes_say_whose_items(yard):
    engine, users, rows = yard
    ann, bob, eve = users["ann"], users["bob"], users["eve"]
    open_ = [row for row in rows if row.status == "open"]
    cases = [
        (WorkItemQuery().within(assigned_to(ann)), lambda r: r.assignee_id == ann),
        (WorkItemQuery().within(assigned_to(ann, bob)), lambda r: r.assignee_id in (ann, bob)),
        (WorkItemQuery().within(queue_of("ann", ["sales"])),
         lambda r: r.assignee_id is None and r.offered_to(["sales"], "ann")),
        (WorkItemQuery().within(queue_of(None, ["heads"])),
         lambda r: r.assignee_id is None and r.offered_to(["heads"])),
        (WorkItemQuery().within(offered_to(["heads"])), lambda r: r.offered_to(["heads"])),
        (WorkItemQuery().within(offered_to([], "eve")), lambda r: r.offered_to([], "eve")),
        (WorkItemQuery().within(department([ann, bob], ["sales"])),
         lambda r: r.assignee_id in (ann, bob) or r.assignee_id is None and r.offered_to(["sales"])),
        (WorkItemQuery().within(department([], ["heads"])),
         lambda r: r.assignee_id is None and r.offered_to(["heads"])),
        # Scopes narrow each other: a department's items of one of its people.
        (WorkItemQuery().within(department([ann, bob], ["sales"]), assigned_to(bob)), lambda r: r.assignee_id == bob),
        (WorkItemQuery().within(offered_to(["sales"]), assigned_to(eve)),
         lambda r: r.assignee_id == eve and r.offered_to(["sales"])),
    ]
    with engine.reading() as session:
        for query, keep in cases:
            wanted = expected(open_, keep)
            assert wanted, query  # every case selects something, or it would prove nothing
            assert [key.id for key in query.keys(session)] == wanted, query
            assert ids(query.items(session)) == wanted, query
            assert query.count(session) == len(wanted), query
            assert session.scalar(select(WorkItem.id).where(query.condition()).order_by(WorkItem.id).limit(1)) == \
                min(wanted), query


def test_filters_status_instance_ids_search_and_deadlines(yard):
    engine, _users, rows = yard
    cases = [
        (WorkItemQuery(status="completed"), lambda r: r.status == "completed"),
        (WorkItemQuery(status=None, instance_id=7), lambda r: r.instance_id == 7),
        (WorkItemQuery().where(ids=(3, 4, 5, 90, 91)), lambda r: r.status == "open" and r.id in (3, 4, 5, 90, 91)),
        # The business key or the step's name.
        (WorkItemQuery().where(search="vasilek"), lambda r: r.status == "open" and "Vasilek" in r.business_key),
        (WorkItemQuery().where(search="review"), lambda r: r.status == "open" and r.name == "Review discount"),
        (WorkItemQuery().where(search="call 100"), lambda r: r.status == "open" and r.name == "Call 100%_back"),
        (WorkItemQuery().overdue(NOW), lambda r: r.status == "open" and r.due_at is not None and r.due_at < NOW),
        (WorkItemQuery().not_overdue(NOW), lambda r: r.status == "open" and (r.due_at is None or r.due_at >= NOW)),
        (WorkItemQuery().at_risk(BUCKETS),
         lambda r: r.status == "open" and r.due_at is not None and NOW <= r.due_at < BUCKETS.risk_until),
        (WorkItemQuery().due_before(BUCKETS.risk_until),
         lambda r: r.status == "open" and r.due_at is not None and r.due_at < BUCKETS.risk_until),
    ]
    with engine.reading() as session:
        for query, keep in cases:
            wanted = expected(rows, keep)
            assert wanted, query
            assert ids(query.items(session)) == wanted, query
        # Taken literally, "Re%discount" would match both discounts; without its wildcard it matches nothing.
        assert WorkItemQuery().where(search="Re%discount").items(session) == []
    with pytest.raises(TypeError, match="no filter assignee"):
        WorkItemQuery().where(assignee="ann")


def test_counts_per_deadline_bucket_ignore_the_listing_deadline(yard):
    engine, users, rows = yard

    def reference(keep) -> Counts:
        chosen = [r for r in rows if r.status == "open" and keep(r)]
        return Counts(len(chosen), sum(r.due_at is not None and r.due_at < NOW for r in chosen),
                      sum(r.due_at is not None and NOW <= r.due_at < BUCKETS.risk_until for r in chosen))

    queue = WorkItemQuery().within(queue_of("ann", ["sales"]))
    in_queue = lambda r: r.assignee_id is None and r.offered_to(["sales"], "ann")  # noqa: E731
    with engine.reading() as session:
        assert queue.counts(session, BUCKETS) == reference(in_queue)
        assert queue.overdue(NOW).counts(session, BUCKETS) == reference(in_queue)
        # One pass: the keys up to the limit, the counts of all the rows.
        keys, counts = queue.keys_and_counts(session, 3, BUCKETS)
        assert counts == reference(in_queue) and [k.id for k in keys] == expected(rows, lambda r: r.status == "open"
                                                                                  and in_queue(r))[:3]
        keys, counts = queue.at_risk(BUCKETS).keys_and_counts(session, None, BUCKETS)
        assert counts == reference(in_queue)
        assert [k.id for k in keys] == expected(rows, lambda r: r.status == "open" and in_queue(r) and
                                                r.due_at is not None and NOW <= r.due_at < BUCKETS.risk_until)
        assert WorkItemQuery().within(assigned_to(99_999)).keys_and_counts(session, 10, BUCKETS) == ([], Counts())
        per_person = WorkItemQuery().within(assigned_to(users["ann"], users["bob"])).counts_per_assignee(
            session, BUCKETS)
    assert per_person == {users[name]: reference(lambda r, name=name: r.assignee_id == users[name])
                          for name in ("ann", "bob")}


def test_a_page_of_two_halves_is_merged_in_order_and_loads_only_its_items(yard):
    engine, users, rows = yard
    ann = users["ann"]
    halves = [WorkItemQuery().within(assigned_to(ann)), WorkItemQuery().within(queue_of("ann", ["sales"]))]
    everything = expected(rows, lambda r: r.status == "open" and (
        r.assignee_id == ann or r.assignee_id is None and r.offered_to(["sales"], "ann")))
    assert len(everything) > 20
    statements = []
    event.listen(engine.db, "before_cursor_execute", lambda *args: statements.append(args[2]))  # BEGIN too (SQLite)
    with engine.reading() as session:
        page = page_of(session, halves, limit=7, offset=7, buckets=BUCKETS, with_instance=True)
        assert ids(page.items) == everything[7:14] and page.more
        assert all(item.instance.business_key for item in page.items)  # loaded with the page
        assert sum(counts.total for counts in page.counts) == len(everything)
        # The keys of each half (with its counts), the page's items, their candidates.
        assert len([sql for sql in statements if sql.startswith("SELECT")]) == 4
        last = page_of(session, halves, limit=7, offset=len(everything) - 3)
        assert ids(last.items) == everything[-3:] and not last.more and last.next_key is None
        assert page_of(session, [], limit=5).items == []


def test_keyset_pages_follow_each_other_without_gaps_or_repeats(yard):
    engine, users, rows = yard
    ann = users["ann"]
    halves = [WorkItemQuery(status=None).within(assigned_to(ann)),
              WorkItemQuery(status=None).within(queue_of("ann", ["sales", "heads"]))]
    everything = expected(rows, lambda r: r.assignee_id == ann or
                          r.assignee_id is None and r.offered_to(["sales", "heads"], "ann"))
    assert any(rows[i - 1].due_at is None for i in everything)  # the cursor crosses into the items without a deadline
    seen, after = [], None
    with engine.reading() as session:
        while True:
            page = page_of(session, halves, limit=6, after=after)
            seen += ids(page.items)
            if page.next_key is None:
                break
            after = page.next_key
        assert seen == everything
        # A cursor among the items without a deadline, and one after the very last item.
        first_without = next(i for i in everything if rows[i - 1].due_at is None)
        rest = page_of(session, halves, limit=500, after=Key(None, rows[first_without - 1].priority, first_without))
        assert ids(rest.items) == everything[everything.index(first_without) + 1:]
        last = rows[everything[-1] - 1]
        assert page_of(session, halves, limit=6, after=Key(last.due_at, last.priority, last.id)).items == []


def test_the_facade_lists_through_the_query(yard):
    engine, users, rows = yard
    assert ids(engine.work_items(queue_of="ann", limit=500)) == expected(
        rows, lambda r: r.status == "open" and r.assignee_id is None and r.offered_to(["sales"], "ann"))
    assert ids(engine.work_items(assignee="bob", overdue=False, status=None, limit=500)) == expected(
        rows, lambda r: r.assignee_id == users["bob"] and (r.due_at is None or r.due_at >= engine.clock()))
    assert ids(engine.work_items(candidate_group="heads", offset=2, limit=3)) == expected(
        rows, lambda r: r.status == "open" and r.offered_to(["heads"]))[2:5]
