"""The escalation ladder: reminder, breach, head of department; each once, at the right moment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import select

from engine import migrations as engine_migrations
from engine.deadlines.calendar import BusinessCalendars
from engine.deadlines.escalation import ESCALATED, Ladder
from engine.errors import ProcessFailed
from engine.models import HistoryEvent, OutboxMessage
from engine.outbox.notifications import Inbox, OutboxSender
from engine.runtime.assignment import calendar_due
from processes.system import build_system
from support.engine import Clock
from support.mail import SmtpSink

MOSCOW = ZoneInfo("Europe/Moscow")

DEAL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="deal_defs" targetNamespace="http://crmflow.test">
  <bpmn:process id="deal" name="Deal" isExecutable="true">
    <bpmn:extensionElements><camunda:properties>
      <camunda:property name="escalation.headAfter" value="PT2H"/>
      {process_properties}
    </camunda:properties></bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="offer"/>
    <bpmn:userTask id="offer" name="Send the commercial offer" camunda:assignee="${{curator}}"
        camunda:dueDate="${{stageDue}}" camunda:priority="50">
      <bpmn:extensionElements>
        <camunda:properties>
          <camunda:property name="stage" value="Commercial offer"/>
          {task_properties}
        </camunda:properties>
        <camunda:formData><camunda:formField id="sent" type="boolean"/></camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="offer" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def moscow(*args) -> datetime:
    return datetime(*args, tzinfo=MOSCOW)


@pytest.fixture
def clock():
    return Clock(moscow(2026, 11, 23, 9).astimezone(timezone.utc))  # Monday 09:00 in Moscow


@pytest.fixture
def sales(database_url, clock, tmp_path):
    """ann sells and reports to boss; olga heads the sales department; sub stands in.
    olga reads Russian (crmflow's default locale), the others English."""
    system = build_system(database_url, clock=clock, due_calculator=BusinessCalendars(), webhooks=None)
    system.init_db()
    engine = system.engine
    engine.add_user("olga", "Olga Head", email="olga@example.test", roles=["employee", "manager"])
    engine.add_user("boss", "Boris Manager", email="boss@example.test", roles=["employee", "manager"], locale="en")
    engine.add_user("ann", "Anna Sales", email="ann@example.test", manager="boss", locale="en")
    engine.add_user("sub", "Sergey Substitute", email="sub@example.test", locale="en")
    engine.add_group("sales", "Sales", head="olga", members=["ann", "boss", "sub"])
    yield system
    system.dispose()


@pytest.fixture
def crm(sales):
    """The engine of the sales department."""
    return sales.engine


@pytest.fixture
def escalation(sales):
    return sales.escalation


def deploy(engine, tmp_path, process_properties="", task_properties=""):
    path = tmp_path / "deal.bpmn"
    path.write_text(DEAL.format(process_properties=process_properties, task_properties=task_properties))
    engine.deploy([path])


def sweep_and_send(escalation, sender):
    result = escalation.sweep()
    sender.send_due()
    return result


def levels_in_history(engine, instance_id):
    return [e.detail["level"] for e in engine.instance(instance_id).history if e.type == ESCALATED]


def test_a_stage_deadline_escalates_by_email_and_in_app_each_once(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    smtp = SmtpSink().start()
    try:
        sender = OutboxSender(crm, smtp.settings)
        inbox = Inbox(crm)
        # The stage's planned duration: 8 working hours, due Monday 18:00.
        instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
        [item] = crm.work_items(instance_id=instance.id)
        assert item.due_at == moscow(2026, 11, 23, 18)
        planned = {e.level: e.due_at for e in escalation.escalations(work_item_id=item.id)}
        # 80 % of 8 working hours = 6 h 24 min, across the lunch hour; the head 2 working hours late.
        assert planned == {"reminder": moscow(2026, 11, 23, 16, 24), "breach": moscow(2026, 11, 23, 18),
                           "head": moscow(2026, 11, 24, 11)}

        clock.now = moscow(2026, 11, 23, 16, 23).astimezone(timezone.utc)
        assert sweep_and_send(escalation, sender).fired == 0
        assert smtp.received() == [] and inbox.unread_count("ann") == 0

        clock.advance(minutes=1)
        assert sweep_and_send(escalation, sender).by_level == {"reminder": 1}
        assert sweep_and_send(escalation, sender).fired == 0  # once
        assert smtp.received() == [("ann@example.test", "Reminder: «Send the commercial offer» is due "
                                                        "11/23/26, 6:00\u202fPM (Europe/Moscow)")]
        assert inbox.unread_count("ann") == 1 and inbox.unread_count("boss") == 0

        clock.now = moscow(2026, 11, 23, 18).astimezone(timezone.utc)
        assert sweep_and_send(escalation, sender).by_level == {"breach": 1}
        breach_mail = sorted(smtp.received()[1:])
        assert breach_mail == [("ann@example.test", "Overdue: «Send the commercial offer» was due "
                                                     "11/23/26, 6:00\u202fPM (Europe/Moscow)"),
                               ("boss@example.test", "Overdue: «Send the commercial offer» was due "
                                                      "11/23/26, 6:00\u202fPM (Europe/Moscow)")]
        assert (inbox.unread_count("ann"), inbox.unread_count("boss"), inbox.unread_count("olga")) == (2, 1, 0)

        # The night and Tuesday morning are not working time: nothing before 11:00.
        clock.now = moscow(2026, 11, 24, 10, 59).astimezone(timezone.utc)
        assert sweep_and_send(escalation, sender).fired == 0
        clock.advance(minutes=1)
        assert sweep_and_send(escalation, sender).by_level == {"head": 1}
        assert smtp.received()[3:] == [("olga@example.test", "Эскалация: «Send the commercial offer» просрочено с "
                                                              "23.11.2026, 18:00 (Europe/Moscow)")]
        assert inbox.unread_count("olga") == 1
        [olga_notice] = inbox.notifications("olga")
        assert "Просрочка: 17 часов\n" in olga_notice.body and "Ответственный: Anna Sales" in olga_notice.body
        [ann_breach, _] = inbox.notifications("ann")
        assert ann_breach.body == ("«Send the commercial offer» was due 11/23/26, 6:00\u202fPM (Europe/Moscow) and "
                                   f"is not done.\n\nResponsible: Anna Sales\nReference: work item {item.id}, "
                                   f"instance {instance.id}\n")
        assert crm.work_item(item.id).priority == 90

        clock.advance(days=3)
        assert sweep_and_send(escalation, sender).fired == 0
        assert len(smtp.received()) == 4

        history = [e for e in crm.instance(instance.id).history if e.type == ESCALATED]
        assert [e.detail["level"] for e in history] == ["reminder", "breach", "head"]
        assert history[1].detail["notified"] == [{"user": "ann", "channels": ["in_app", "email"]},
                                                 {"user": "boss", "channels": ["in_app", "email"]}]
        assert history[2].at == moscow(2026, 11, 24, 11)
    finally:
        smtp.stop()


def test_closing_the_item_cancels_what_is_still_pending(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
    [item] = crm.work_items(instance_id=instance.id)
    clock.now = moscow(2026, 11, 23, 17).astimezone(timezone.utc)
    assert escalation.sweep().by_level == {"reminder": 1}
    crm.complete(item.id, {"sent": True}, "ann")
    clock.advance(days=5)
    assert escalation.sweep().fired == 0
    statuses = {e.level: e.status for e in escalation.escalations(work_item_id=item.id)}
    assert statuses == {"reminder": "done", "breach": "cancelled", "head": "cancelled"}


def test_after_downtime_missed_rungs_fire_once_in_order_and_a_stale_reminder_is_skipped(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    instances = [crm.start("deal", {"curator": "ann", "stageDue": due}, started_by="ann")
                 for due in ("PT8H", "PT4H")]
    clock.now = moscow(2026, 11, 27, 12).astimezone(timezone.utc)  # the scheduler was down until Friday
    result = escalation.sweep(batch=2)  # small batches: order must hold across them
    assert (result.fired, result.skipped) == (4, 2)
    assert escalation.sweep().fired == 0
    for instance in instances:
        assert levels_in_history(crm, instance.id) == ["reminder", "breach", "head"]
        [skipped] = [e for e in crm.instance(instance.id).history if e.type == ESCALATED][:1]
        assert "deadline had passed" in skipped.detail["skipped"]
    with crm.reading() as session:
        fired = [(e.instance_id, e.detail["level"]) for e in session.scalars(
            select(HistoryEvent).where(HistoryEvent.type == ESCALATED).order_by(HistoryEvent.id))
            if "skipped" not in e.detail]
    # Oldest first: the 4-hour deal's breach (13:00) and head (15:00) before the 8-hour deal's.
    assert fired == [(instances[1].id, "breach"), (instances[1].id, "head"),
                     (instances[0].id, "breach"), (instances[0].id, "head")]
    assert Inbox(crm).unread_count("ann") == 2 and Inbox(crm).unread_count("olga") == 2


def test_the_task_declares_its_own_ladder_with_a_substitute(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path, task_properties="""
        <camunda:property name="escalation.remindBefore" value="PT1H"/>
        <camunda:property name="escalation.headAfter" value="PT30M"/>
        <camunda:property name="escalation.reassignTo" value="sub"/>
        <camunda:property name="escalation.raisePriorityTo" value="99"/>
        <camunda:property name="escalation.channels" value="in_app"/>""")
    instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
    [item] = crm.work_items(instance_id=instance.id)
    planned = {e.level: e.due_at for e in escalation.escalations(work_item_id=item.id)}
    assert planned == {"reminder": moscow(2026, 11, 23, 17), "breach": moscow(2026, 11, 23, 18),
                       "head": moscow(2026, 11, 24, 9, 30)}
    clock.now = moscow(2026, 11, 24, 9, 30).astimezone(timezone.utc)
    escalation.sweep()
    item_now = crm.work_item(item.id)
    assert (item_now.assignee.username, item_now.priority, item_now.version) == ("sub", 99, item.version + 1)
    # Whom each fired rung was about: ann, who held the item until the last one handed it to
    # sub (the reminder, past its deadline, was skipped, not sent).
    about = {e.level: e.assignee_id for e in escalation.escalations(work_item_id=item.id)}
    assert about == {"reminder": None, "breach": item.assignee_id, "head": item.assignee_id}
    assert item.assignee_id != item_now.assignee_id
    # Rungs fired before the migration that records it get the item's present assignee.
    command.downgrade(engine_migrations.alembic_config(crm.db), "0005")
    engine_migrations.upgrade(crm.db)
    about = {e.level: e.assignee_id for e in escalation.escalations(work_item_id=item.id)}
    assert about == {"reminder": None, "breach": item_now.assignee_id, "head": item_now.assignee_id}
    reassigned = [e for e in crm.instance(instance.id).history if e.type == "work_item_reassigned"]
    assert reassigned[0].detail["to"] == "sub" and reassigned[0].actor == "escalation"
    with crm.reading() as session:
        assert session.scalar(select(OutboxMessage)) is None  # in-app only
    assert Inbox(crm).unread_count("olga") == 1


def test_escalation_can_be_switched_off_per_process(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path, process_properties='<camunda:property name="escalation" value="off"/>')
    instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
    assert escalation.escalations(instance_id=instance.id) == []


@pytest.mark.parametrize("prop, message", [
    ('<camunda:property name="escalation.remindAt" value="120%"/>', "escalation.remindAt='120%'"),
    ('<camunda:property name="escalation.headAfter" value="two hours"/>', "not an ISO 8601 duration"),
    ('<camunda:property name="escalation.channels" value="pigeon"/>', "in_app, email"),
    ('<camunda:property name="escalation.remindEarly" value="yes"/>', "unknown setting"),
])
def test_a_bad_ladder_setting_fails_the_step_naming_the_task(crm, tmp_path, prop, message):
    deploy(crm, tmp_path, task_properties=prop)
    with pytest.raises(ProcessFailed) as error:
        crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
    assert "User task 'offer' (Send the commercial offer)" in str(error.value) and message in str(error.value)
    assert crm.work_items() == []  # nothing half-written


def test_an_unassigned_item_escalates_to_its_queue_and_the_group_head(crm, clock, tmp_path, escalation):
    path = tmp_path / "queue.bpmn"
    path.write_text(DEAL.format(process_properties="", task_properties="")
                    .replace('camunda:assignee="${curator}"', 'camunda:candidateGroups="sales"'))
    crm.deploy([path])
    crm.start("deal", {"stageDue": "PT8H"})
    inbox = Inbox(crm)
    clock.now = moscow(2026, 11, 23, 16, 30).astimezone(timezone.utc)
    escalation.sweep()
    assert [inbox.unread_count(u) for u in ("ann", "boss", "sub", "olga")] == [1, 1, 1, 0]
    clock.now = moscow(2026, 11, 23, 18).astimezone(timezone.utc)
    escalation.sweep()
    assert [inbox.unread_count(u) for u in ("ann", "boss", "sub", "olga")] == [1, 1, 1, 1]


def test_a_whole_instance_deadline_escalates_to_its_responsible(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    instance = crm.start("deal", {"curator": "ann", "stageDue": "P10D"}, started_by="ann")
    deadline = escalation.set_instance_deadline(instance.id, due="PT16H", responsible="ann", team="sales")
    assert deadline.due_at == moscow(2026, 11, 24, 18)
    inbox = Inbox(crm)
    clock.now = moscow(2026, 11, 24, 15).astimezone(timezone.utc)  # 80 % of 16 working hours: 14:48
    assert escalation.sweep().by_level == {"reminder": 1}
    clock.now = moscow(2026, 11, 24, 18).astimezone(timezone.utc)
    assert escalation.sweep().by_level == {"breach": 1}
    assert [inbox.unread_count(u) for u in ("ann", "boss", "olga")] == [2, 1, 0]
    [breach] = inbox.notifications("boss")
    assert breach.subject == f"Overdue: the response deadline of instance {instance.id} was due " \
                             "11/24/26, 6:00\u202fPM (Europe/Moscow)"
    # Answered: the head is not bothered.
    escalation.meet_instance_deadline(instance.id)
    clock.advance(days=2)
    assert escalation.sweep().fired == 0
    assert inbox.unread_count("olga") == 0


def test_a_notice_after_downtime_says_how_late_in_each_readers_words(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")  # due Monday 18:00
    # No scheduler ran until Tuesday 20:01: the breach and the head rung fire at once, both late.
    clock.now = moscow(2026, 11, 24, 20, 1).astimezone(timezone.utc)
    assert escalation.sweep().by_level == {"breach": 1, "head": 1}
    inbox = Inbox(crm)
    [boss_breach] = inbox.notifications("boss")
    [olga_head] = inbox.notifications("olga")
    assert "\nLate by: 1 day 2 hours 1 minute\n" in boss_breach.body
    assert "\nПросрочка: 1 день 2 часа 1 минута\n" in olga_head.body
    assert olga_head.body.startswith("Срок «Send the commercial offer» истёк 23.11.2026, 18:00 (Europe/Moscow), "
                                     "работа всё ещё не выполнена")
    assert f"Ссылка: задача {crm.work_items(instance_id=instance.id)[0].id}, процесс {instance.id}" in olga_head.body


def test_calendar_time_without_a_business_calendar(database_url, clock, tmp_path):
    system = build_system(database_url, clock=clock, due_calculator=calendar_due, webhooks=None)
    system.init_db()
    engine = system.engine
    engine.add_user("ann", email="ann@example.test")
    deploy(engine, tmp_path)
    instance = engine.start("deal", {"curator": "ann", "stageDue": "PT10H"})
    planned = {e.level: e.due_at for e in system.escalation.escalations(instance_id=instance.id)}
    start = clock()
    assert planned == {"reminder": start + timedelta(hours=8), "breach": start + timedelta(hours=10),
                       "head": start + timedelta(hours=12)}
    engine.dispose()


def test_service_ladders_per_process(crm, tmp_path, escalation):
    escalation.processes["deal"] = Ladder(remind_at=0.5, head_after=None)
    deploy(crm, tmp_path)
    instance = crm.start("deal", {"curator": "ann", "stageDue": "PT8H"}, started_by="ann")
    planned = {e.level: e.due_at for e in escalation.escalations(instance_id=instance.id)}
    # The BPMN's headAfter (PT2H) still wins over the service's ladder for the process.
    assert planned == {"reminder": moscow(2026, 11, 23, 13), "breach": moscow(2026, 11, 23, 18),
                       "head": moscow(2026, 11, 24, 11)}


def test_moving_an_instance_deadline_replans_what_has_not_fired(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path)
    instance = crm.start("deal", {"curator": "ann", "stageDue": "P10D"}, started_by="ann")
    escalation.set_instance_deadline(instance.id, due="PT16H", responsible="ann")
    clock.now = moscow(2026, 11, 24, 15).astimezone(timezone.utc)
    assert escalation.sweep().by_level == {"reminder": 1}
    # Extended by two working days: the breach and head move, the sent reminder stays sent.
    escalation.set_instance_deadline(instance.id, due=moscow(2026, 11, 26, 18), responsible="ann")
    rungs = {e.level: (e.status, e.due_at) for e in escalation.escalations(instance_id=instance.id)
             if e.work_item_id is None}
    assert rungs == {"reminder": ("done", moscow(2026, 11, 24, 14, 48)),
                     "breach": ("pending", moscow(2026, 11, 26, 18)),
                     "head": ("pending", moscow(2026, 11, 27, 11))}
    clock.now = moscow(2026, 11, 25, 9).astimezone(timezone.utc)
    assert escalation.sweep().fired == 0
    with pytest.raises(Exception, match="no process instance 999"):
        escalation.set_instance_deadline(999, due="PT1H", responsible="ann")


def test_the_process_declares_a_whole_instance_deadline(crm, clock, tmp_path, escalation):
    deploy(crm, tmp_path, process_properties="""
        <camunda:property name="deadline.response" value="${responseDue}"/>
        <camunda:property name="deadline.response.responsible" value="${curator}"/>
        <camunda:property name="deadline.response.team" value="sales"/>""")
    instance = crm.start("deal", {"curator": "ann", "stageDue": "P10D", "responseDue": "PT8H"}, started_by="ann")
    rungs = {e.level: e.due_at for e in escalation.escalations(instance_id=instance.id) if e.work_item_id is None}
    assert rungs == {"reminder": moscow(2026, 11, 23, 16, 24), "breach": moscow(2026, 11, 23, 18),
                     "head": moscow(2026, 11, 24, 11)}
    clock.now = moscow(2026, 11, 24, 11).astimezone(timezone.utc)
    escalation.sweep()
    assert [Inbox(crm).unread_count(u) for u in ("ann", "boss", "olga")] == [1, 1, 1]
    # The instance ends: the deadline is met, nothing more is sent.
    [item] = crm.work_items(instance_id=instance.id)
    crm.complete(item.id, {"sent": True}, "ann")
    with crm.reading() as session:
        from engine.models import InstanceDeadline
        assert session.scalar(select(InstanceDeadline.met_at)) == clock()


def test_a_declared_deadline_with_a_missing_variable_fails_the_start(crm, tmp_path):
    deploy(crm, tmp_path, process_properties='<camunda:property name="deadline.response" value="${responseDue}"/>')
    with pytest.raises(ProcessFailed, match="the process has no variable 'responseDue'"):
        crm.start("deal", {"curator": "ann", "stageDue": "P10D"}, started_by="ann")
    assert crm.work_items() == []


def test_upgrading_gives_open_items_with_a_deadline_their_breach_rung(database_url, clock):
    from sqlalchemy import insert as sql_insert

    from engine.migrations import upgrade
    from engine.models import ProcessDefinition, ProcessInstance, WorkItem

    system = build_system(database_url, clock=clock, webhooks=None)
    engine = system.engine
    upgrade(engine.db, "0001")  # a database from before deadlines were escalated
    now = clock()
    with engine.db.begin() as connection:
        connection.execute(sql_insert(ProcessDefinition.__table__), [dict(
            id=1, key="old", version=1, content_hash="-", sources={}, deployed_at=now)])
        connection.execute(sql_insert(ProcessInstance.__table__), [dict(
            id=1, definition_id=1, process_key="old", status="running", state="{}", version=1,
            started_at=now, updated_at=now)])
        connection.execute(sql_insert(WorkItem.__table__), [
            dict(id=n, instance_id=1, task_id=f"t{n}", task_spec="t", name="Old item", stage="s", priority=50,
                 status=status, version=1, created_at=now, due_at=due)
            for n, status, due in ((1, "open", now - timedelta(hours=1)), (2, "open", None),
                                   (3, "completed", now - timedelta(hours=1)))])
    engine.init_db()
    [rung] = system.escalation.escalations()
    assert (rung.dedupe_key, rung.level, rung.due_at, rung.status) == (
        "item:1:breach", "breach", now - timedelta(hours=1), "pending")
    assert system.escalation.sweep().by_level == {"breach": 1}
    engine.dispose()
