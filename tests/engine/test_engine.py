"""The engine facade, as the CLI, the web UI and the API use it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.errors import (
    InvalidFormData,
    NotAuthorized,
    NotFound,
    ProcessFailed,
    ProcessNotDeployed,
    StaleWorkItem,
    UnknownUser,
    WorkItemClosed,
)
from support.engine import GOOD_REQUEST


def only_item(engine, instance_id):
    [item] = engine.work_items(instance_id=instance_id)
    return item


def test_a_user_task_becomes_a_work_item_with_owner_deadline_priority_and_stage(company, clock):
    instance = company.start("approval", {"curator": "ann"}, started_by="bob", business_key="DEAL-1")

    item = only_item(company, instance.id)
    assert item.name == "Request discount"
    assert item.assignee.username == "ann"
    assert item.due_at == clock.now + timedelta(days=2)
    assert item.priority == 70
    assert item.stage == "Negotiation"
    assert item.candidate_groups == ["sales"]  # the lane, since the task names no candidates
    assert instance.current_stage == "Negotiation"
    assert instance.business_key == "DEAL-1"


def test_completing_runs_the_process_to_the_next_human_step(company, clock):
    instance = company.start("approval", {"curator": "ann"})
    request = only_item(company, instance.id)

    done = company.complete(request.id, GOOD_REQUEST, "ann", expected_version=request.version)

    assert done.status == "completed"
    assert done.completed_by == "ann"
    assert done.submitted_data == {"discount": 10, "reason": "loyal customer", "valid_until": "2026-12-31",
                                   "urgent": True, "channel": "email"}
    review = only_item(company, instance.id)
    assert review.name == "Review discount"
    assert review.assignee is None
    assert review.candidate_groups == ["heads"]
    assert review.due_at == clock.now + timedelta(hours=4)
    details = company.instance(instance.id)
    assert details.data["discount"] == 10
    assert details.data["valid_until"] == date(2026, 12, 31)


def test_the_gateway_follows_camunda_style_conditions(company):
    for approved, outcome in ((True, "end_ok"), (False, "end_no")):
        instance = company.start("approval", {"curator": "ann"})
        company.complete(only_item(company, instance.id).id, GOOD_REQUEST, "ann")
        company.complete(only_item(company, instance.id).id, {"approved": approved}, "boss")

        details = company.instance(instance.id)
        assert details.instance.status == "completed"
        assert details.instance.ended_at is not None
        completed = [e.task_spec for e in details.history if e.type == "task_completed"]
        assert outcome in completed
        assert details.open_items == []


def test_every_bad_form_value_is_reported_against_its_field_and_nothing_changes(company):
    instance = company.start("approval", {"curator": "ann"})
    item = only_item(company, instance.id)

    with pytest.raises(InvalidFormData) as error:
        company.complete(item.id, {"discount": "ten", "reason": "no", "valid_until": "31 Feb",
                                   "channel": "pigeon", "classified": True}, "ann")

    assert messages(error.value) == {
        "discount": ("not_a_whole_number", "must be a whole number"),
        "reason": ("too_short", "must be at least 3 characters"),
        "valid_until": ("not_a_date", "must be a date such as 2026-12-31"),
        "channel": ("not_an_option", "must be one of email, phone"),
        "classified": ("unknown_field", "is not a field of this step's form"),
    }
    assert error.value.errors["channel"].params == {"options": ["email", "phone"]}
    assert error.value.errors["reason"].render("ru") == "не меньше 3 символов"
    unchanged = company.work_item(item.id)
    assert (unchanged.status, unchanged.version) == ("open", item.version)

    with pytest.raises(InvalidFormData) as error:
        company.complete(item.id, {"discount": 80}, "ann")
    assert messages(error.value) == {"discount": ("too_large", "must be at most 50")}
    assert str(error.value) == "The form of 'Request discount' has invalid values: discount: must be at most 50"
    assert error.value.render("ru") == "В форме «Request discount» есть неверные значения: discount: не больше 50"
    with pytest.raises(InvalidFormData) as error:
        company.complete(item.id, {}, "ann")
    assert messages(error.value) == {"discount": ("required", "is required")}


def messages(error: InvalidFormData) -> dict[str, tuple[str, str]]:
    """Each field's code and English message."""
    return {field: (problem.code, str(problem)) for field, problem in error.errors.items()}


def test_queues_claims_and_who_may_complete(company):
    instance = company.start("approval", {"curator": "ann"})
    company.complete(only_item(company, instance.id).id, GOOD_REQUEST, "ann")
    review = only_item(company, instance.id)

    assert [i.id for i in company.work_items(queue_of="boss")] == [review.id]
    assert company.work_items(queue_of="ann") == []
    assert [i.id for i in company.work_items(candidate_group="heads")] == [review.id]
    with pytest.raises(NotAuthorized):
        company.complete(review.id, {"approved": True}, "ann")
    with pytest.raises(NotAuthorized):
        company.claim(review.id, "bob")

    claimed = company.claim(review.id, "boss")
    assert claimed.assignee.username == "boss"
    assert claimed.version == review.version + 1
    assert company.work_items(queue_of="boss") == []
    assert [i.id for i in company.work_items(assignee="boss")] == [review.id]
    with pytest.raises(WorkItemClosed):
        company.claim(review.id, "root")


def test_reassignment_is_for_the_responsible_and_makes_open_forms_stale(company):
    instance = company.start("approval", {"curator": "ann"})
    item = only_item(company, instance.id)

    with pytest.raises(NotAuthorized):
        company.reassign(item.id, "bob", by_user="eve", reason="not mine to move")
    moved = company.reassign(item.id, "bob", by_user="boss", reason="Anna is ill")

    assert moved.assignee.username == "bob"
    with pytest.raises(StaleWorkItem):
        company.complete(item.id, GOOD_REQUEST, "bob", expected_version=item.version)
    with pytest.raises(NotAuthorized):
        company.complete(item.id, GOOD_REQUEST, "ann")
    company.complete(item.id, GOOD_REQUEST, "bob", expected_version=moved.version)

    [event] = [e for e in company.instance(instance.id).history if e.type == "work_item_reassigned"]
    assert (event.actor, event.detail) == ("boss", {"from": "ann", "to": "bob", "reason": "Anna is ill"})


def test_a_completed_item_cannot_be_completed_again(company):
    instance = company.start("approval", {"curator": "ann"})
    item = only_item(company, instance.id)
    company.complete(item.id, GOOD_REQUEST, "ann")

    with pytest.raises(WorkItemClosed, match="already completed by ann"):
        company.complete(item.id, GOOD_REQUEST, "ann")


def test_unknown_users_processes_and_items_are_named_in_the_error(company):
    with pytest.raises(UnknownUser, match="'mallory'"):
        company.start("approval", {"curator": "ann"}, started_by="mallory")
    with pytest.raises(ProcessNotDeployed, match="'nope'"):
        company.start("nope")
    instance = company.start("approval", {"curator": "ann"})
    with pytest.raises(UnknownUser):
        company.complete(only_item(company, instance.id).id, GOOD_REQUEST, "mallory")
    with pytest.raises(NotFound, match="no work item 999999"):
        company.complete(999999, {}, "ann")


def test_an_assignee_who_is_not_a_user_leaves_the_item_in_the_queue(company):
    instance = company.start("approval", {"curator": "ghost"})

    item = only_item(company, instance.id)
    assert item.assignee is None
    assert item.candidate_groups == ["sales"]
    [created] = [e for e in company.instance(instance.id).history if e.type == "work_item_created"]
    assert created.detail["unassigned_reason"] == "'ghost' is not a crmflow user"


def test_an_expression_that_cannot_be_evaluated_names_the_task(company):
    with pytest.raises(ProcessFailed, match=r"User task 'request' \(Request discount\): camunda:assignee"):
        company.start("approval", {})


def test_history_tells_the_story_in_order(company):
    instance = company.start("approval", {"curator": "ann"}, started_by="bob")
    company.complete(only_item(company, instance.id).id, GOOD_REQUEST, "ann")
    company.complete(only_item(company, instance.id).id, {"approved": True}, "boss")

    history = company.instance(instance.id).history
    summary = [(e.type, e.actor, e.task_spec or (e.detail or {}).get("stage")) for e in history
               if e.type != "task_completed"]
    assert summary == [
        ("instance_started", "bob", None),
        ("work_item_created", None, "request"),
        ("stage_entered", None, "Negotiation"),
        ("work_item_completed", "ann", "request"),
        ("work_item_created", None, "review"),
        ("stage_left", None, "Negotiation"),
        ("stage_entered", None, "Review discount"),
        ("work_item_completed", "boss", "review"),
        ("stage_left", None, "Review discount"),
        ("instance_completed", "boss", None),
    ]


def test_overdue_filter_follows_the_clock(company, clock):
    instance = company.start("approval", {"curator": "ann"})
    assert company.work_items(overdue=True) == []
    clock.advance(days=2, seconds=1)
    assert [i.instance_id for i in company.work_items(overdue=True)] == [instance.id]
    assert company.work_items(overdue=False) == []


def test_a_timer_wakes_the_instance_and_its_successors_run(company, clock):
    instance = company.start("reminder", {"curator": "ann"})
    assert instance.next_wakeup_at == clock() + timedelta(seconds=1)  # PT1S from the step's moment
    company.wake(instance.id)  # not due yet: nothing fires
    assert "timer_fired" not in [e.type for e in company.instance(instance.id).history]
    clock.advance(seconds=1)
    assert company.due_instances() == [instance.id]

    company.wake(instance.id)

    names = sorted(i.name for i in company.work_items(instance_id=instance.id))
    assert names == ["Call the customer back", "Chase the call"]
    assert company.due_instances() == []
    assert "timer_fired" in [e.type for e in company.instance(instance.id).history]


def test_a_failing_script_refuses_the_completion_and_saves_nothing(company):
    instance = company.start("failing_script")
    item = only_item(company, instance.id)

    with pytest.raises(ProcessFailed, match="'compute'"):
        company.complete(item.id, {"amount": 0}, "ann")

    assert company.work_item(item.id).status == "open"
    company.complete(item.id, {"amount": 4}, "ann")
    assert company.instance(instance.id).data["share"] == 25


def test_listeners_see_each_steps_events_inside_its_transaction(company):
    seen = []

    def listener(session, events):
        session.flush()
        seen.append([(e.type, e.instance_id) for e in events if e.type != "task_completed"])

    company.add_listener(listener)
    instance = company.start("approval", {"curator": "ann"})
    assert seen == [[("instance_started", instance.id), ("work_item_created", instance.id),
                     ("stage_entered", instance.id)]]

    def refuse(session, events):
        raise RuntimeError("the domain says no")

    company.add_listener(refuse)
    item = only_item(company, instance.id)
    with pytest.raises(RuntimeError):
        company.complete(item.id, GOOD_REQUEST, "ann")
    assert company.work_item(item.id).status == "open"  # the step rolled back with the listener


def test_a_listener_for_some_processes_sees_only_their_events(company):
    seen = []
    company.add_listener(lambda session, events: seen.extend({e.instance_id for e in events}),
                         process_keys={"reminder"})
    approval = company.start("approval", {"curator": "ann"})
    reminder = company.start("reminder", {"curator": "ann"})
    company.reassign(only_item(company, approval.id).id, "bob", by_user="boss")  # no step loads the instance

    assert seen == [reminder.id]


def test_each_instance_of_a_multi_instance_task_is_a_work_item_with_the_form(company):
    instance = company.start("mi_loop", {"rounds": 0, "target": 1, "owners": ["ann", "bob"]})

    items = company.work_items(instance_id=instance.id)
    assert sorted(i.assignee.username for i in items) == ["ann", "bob"]
    assert [f.id for f in company.user_task_form(items[0])] == ["ok"]
    for item in items:
        company.complete(item.id, {"ok": True}, item.assignee.username)
    assert company.instance(instance.id).instance.status == "completed"
