"""The read model's pages ask the database a fixed number of statements, however many work
items they show (no statement per item)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from support.api import api_as
from support.office import GOOD_REQUEST, as_user, start_approval


def statements_of(app, office, client, url: str) -> int:
    executed = []

    def count(*_args):
        executed.append(1)

    event.listen(office.db, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(office.db, "before_cursor_execute", count)
    assert response.status_code == 200, url
    return len(executed)


@pytest.mark.parametrize("who, url", [("ann", "/"), ("ann", "/?bucket=overdue"), ("boss", "/?bucket=queue"),
                                      ("boss", "/board/"), ("boss", "/board/?by=employee"), ("boss", "/board/team"),
                                      ("root", "/board/"), ("boss", "/api/v1/work-items?scope=team")])
def test_lists_of_work_items_cost_the_same_for_two_items_and_for_twelve(app, office, clock, who, url):
    client = api_as(app, office, who) if url.startswith("/api/") else as_user(app, who)

    def add(count: int, first: int) -> None:
        for n in range(first, first + count):
            instance, item = start_approval(office, curator="ann" if n % 2 else "bob", key=f"DEAL-{n}")
            if n % 3 == 0:  # a step in the heads' queue
                office.complete(item.id, GOOD_REQUEST, item.assignee.username)

    add(2, 0)
    clock.advance(days=3)  # overdue now, on the board
    few = statements_of(app, office, client, url)
    add(10, 2)
    clock.advance(days=3)
    assert statements_of(app, office, client, url) == few

