"""The visibility policy (webui/visibility.py): who sees an item or an instance and who may
act on an item, and that the HTML pages and the REST API answer by the same policy.

The office: boss heads sales (ann, bob) and is in heads; carl heads support (sue); dora
designs; root is the admin; eve belongs to no department."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from support.api import api_as
from support.office import GOOD_REQUEST, as_user, start_approval
from webui import readmodel
from webui.access import load_person
from webui.visibility import Visibility, may_act, may_see_instance, may_see_item

PEOPLE = ("ann", "bob", "boss", "carl", "sue", "eve", "dora", "root")


def people(office) -> dict:
    with office.reading() as session:
        return {name: load_person(session, readmodel.user_for_sign_in(session, name)) for name in PEOPLE}


def seeing(office, item_id: int) -> set[str]:
    everyone = people(office)
    with office.reading() as session:
        item = readmodel.work_item(session, item_id)
        return {name for name, person in everyone.items() if may_see_item(session, person, item)}


def acting(office, item_id: int) -> set[str]:
    with office.reading() as session:
        item = readmodel.work_item(session, item_id)
    return {name for name, person in people(office).items() if may_act(person, item)}


def test_an_assigned_item_is_seen_by_its_assignee_their_manager_and_admins(office):
    _instance, item = start_approval(office, curator="ann")
    assert item.candidate_groups == ["sales"]  # its lane: bob, in sales, does not see ann's item
    assert seeing(office, item.id) == {"ann", "boss", "root"}
    assert acting(office, item.id) == {"ann"}


def test_a_queued_item_is_seen_by_its_candidates_and_the_heads_of_its_groups(office):
    instance, item = start_approval(office, curator="ann")
    office.complete(item.id, GOOD_REQUEST, "ann")
    [review] = office.work_items(instance_id=instance.id)  # offered to the group heads
    assert review.assignee_id is None and review.candidate_groups == ["heads"]
    assert seeing(office, review.id) == {"boss", "root"}  # boss is in heads; heads has no head
    assert acting(office, review.id) == {"boss"}
    # The completed first step: whoever completed it, their manager, admins; no one acts on it.
    assert seeing(office, item.id) == {"ann", "boss", "root"}
    assert acting(office, item.id) == set()


def test_a_former_assignee_still_sees_an_item_handed_on(office):
    _instance, item = start_approval(office, curator="ann")
    office.reassign(item.id, "sue", "root", "ann is ill")
    # boss heads sales, the group it is offered to; carl manages sue.
    assert seeing(office, item.id) == {"ann", "sue", "boss", "carl", "root"}
    assert acting(office, item.id) == {"sue"}
    _other_instance, still_hers = start_approval(office, curator="ann", key="DEAL-2")
    _third, never_hers = start_approval(office, curator="sue", key="DEAL-3")
    with office.reading() as session:
        listed = [readmodel.work_item(session, i.id) for i in (never_hers, item, still_hers)]
        assert Visibility(session, people(office)["ann"]).may_see_items(listed) == [False, True, True]


def test_an_instance_is_seen_by_designers_its_starter_and_who_took_part(office):
    instance, item = start_approval(office, curator="ann")
    everyone = people(office)
    with office.reading() as session:
        loaded = readmodel.instance(session, instance.id)
        seen = {name for name, person in everyone.items() if may_see_instance(session, person, loaded)}
    # boss started it; ann holds its step, offered to sales (bob's group); dora designs; root is the admin.
    assert seen == {"ann", "bob", "boss", "dora", "root"}
    office.reassign(item.id, "sue", "root")
    with office.reading() as session:
        seen = {name for name, person in everyone.items() if may_see_instance(session, person, loaded)}
    assert seen == {"ann", "bob", "boss", "carl", "sue", "dora", "root"}  # carl through sue


def test_one_visibility_asks_for_the_team_and_the_history_once_for_many_items(office):
    items = [start_approval(office, curator="ann", key=f"DEAL-{n}")[1] for n in range(6)]
    carl = people(office)["carl"]  # manages sue, sees none of ann's items: every rule is asked
    statements = []
    event.listen(office.db, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with office.reading() as session:
        loaded = [readmodel.work_item(session, item.id) for item in items]
        statements.clear()
        visibility = Visibility(session, carl)
        assert visibility.may_see_items(loaded) == [False] * 6
        assert [visibility.may_see_item(item) for item in loaded[:2]] == [False] * 2
    assert len([sql for sql in statements if "users.manager_id" in sql]) == 1  # the team, remembered
    assert len([sql for sql in statements if "history_events" in sql]) == 3  # once for the six, once each after


@pytest.mark.parametrize("name", PEOPLE)
def test_the_pages_and_the_api_refuse_the_same_people(app, office, name):
    instance, item = start_approval(office, curator="ann")
    office.complete(item.id, GOOD_REQUEST, "ann")
    [review] = office.work_items(instance_id=instance.id)
    page, api = as_user(app, name), api_as(app, office, name)
    for item_id in (item.id, review.id):
        assert (page.get(f"/items/{item_id}").status_code == 200) == (api.get(f"/api/v1/work-items/{item_id}")
                                                                        .status_code == 200), item_id
    assert (page.get(f"/instances/{instance.id}").status_code == 200) == (
        api.get(f"/api/v1/instances/{instance.id}").status_code == 200)
