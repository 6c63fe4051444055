"""Messages between instances (engine/runtime/messages.py): a message throw event, a message
end event or a send task publishes; the instances that wait for the message's name and
correlation key receive it, each in a step of its own inside the sender's transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import MessageNotDelivered, ProcessFailed
from engine.models import EventType, MessageDelivery, MessageStatus, ProcessInstance, PublishedMessage
from engine.runtime.messages import MAX_CHAIN
from support import DATA
from support.bpmn import definitions, process, properties, write

CONFORMANCE = DATA / "conformance"


@pytest.fixture
def ann(engine):
    engine.add_user("ann")
    return engine


def open_items(engine, instance_id) -> list[str]:
    return [item.name for item in engine.work_items(instance_id=instance_id)]


def complete_only_item(engine, instance_id, data=None):
    [item] = engine.work_items(instance_id=instance_id)
    engine.complete(item.id, data or {}, item.assignee.username if item.assignee else "ann")


def history(engine, instance_id, kind: EventType):
    return [event for event in engine.instance(instance_id).history if event.type == kind.value]


def messages(engine) -> list[PublishedMessage]:
    with engine.reading() as session:
        return list(session.scalars(select(PublishedMessage).order_by(PublishedMessage.id)))


@pytest.mark.parametrize("sender", ["message_throw.bpmn", "message_end.bpmn"])
def test_a_message_event_reaches_the_instance_that_waits_with_its_key(ann, sender):
    ann.deploy([CONFORMANCE / sender, CONFORMANCE / "message_catch.bpmn"])
    waiting = ann.start("deal", {"deal": "D1"})
    other_deal = ann.start("deal", {"deal": "D2"})
    signing = ann.start(ann.definitions()[-1].key, {"deal": "D1", "signed_by": "ann"})

    complete_only_item(ann, signing.id)

    assert open_items(ann, waiting.id) == ["Send the invoice"]
    assert ann.instance(waiting.id).data["signed_by"] == "ann"  # the message carries the sender's variables
    assert open_items(ann, other_deal.id) == []  # another key
    [sent] = history(ann, signing.id, EventType.MESSAGE_SENT)
    assert (sent.detail["name"], sent.detail["correlation_key"], sent.detail["delivered_to"]) == (
        "contract_signed", "D1", [waiting.id])
    [received] = history(ann, waiting.id, EventType.MESSAGE_RECEIVED)
    assert (received.task_spec, received.detail["from_instance"]) == ("wait_for_contract", signing.id)
    assert [m.status for m in messages(ann)] == [MessageStatus.DELIVERED]


def test_a_send_task_reaches_a_receive_task(ann):
    ann.deploy([CONFORMANCE / "send_task.bpmn", CONFORMANCE / "receive_task.bpmn"])
    delivery = ann.start("delivery", {"deal": "D5"})

    posting = ann.start("posting", {"deal": "D5"})

    assert posting.status == "completed"
    assert open_items(ann, delivery.id) == ["Ship the goods"]


def test_the_receiving_step_is_heard_by_the_listeners_in_the_senders_transaction(ann):
    ann.deploy([CONFORMANCE / "send_task.bpmn", CONFORMANCE / "receive_task.bpmn"])
    delivery = ann.start("delivery", {"deal": "D5"})
    heard = []
    ann.add_listener(lambda session, events: heard.append([(e.instance_id, e.type) for e in events]))

    posting = ann.start("posting", {"deal": "D5"})

    [transaction] = heard
    assert (posting.id, EventType.MESSAGE_SENT) in transaction
    assert (delivery.id, EventType.MESSAGE_RECEIVED) in transaction
    assert (delivery.id, EventType.WORK_ITEM_CREATED) in transaction


def test_a_message_nobody_waits_for_is_kept_for_its_time_to_live(ann, clock):
    ann.deploy([CONFORMANCE / "send_task.bpmn", CONFORMANCE / "receive_task.bpmn"])
    ann.start("posting", {"deal": "early"})
    [sent] = messages(ann)
    assert sent.status == MessageStatus.PENDING
    assert sent.expires_at == clock.now + timedelta(days=1)  # P1D, the default

    clock.advance(hours=20)
    late_receiver = ann.start("delivery", {"deal": "early"})

    assert open_items(ann, late_receiver.id) == ["Ship the goods"]  # received in the step that made it wait
    assert messages(ann)[0].status == MessageStatus.DELIVERED
    second = ann.start("delivery", {"deal": "early"})
    assert open_items(ann, second.id) == []  # delivered once, not kept for the next


def test_a_kept_message_expires(ann, clock):
    ann.deploy([CONFORMANCE / "send_task.bpmn", CONFORMANCE / "receive_task.bpmn"])
    ann.start("posting", {"deal": "early"})

    clock.advance(days=1)
    assert ann.deliver_messages() == {"expired": 1, "delivered": 0}
    receiver = ann.start("delivery", {"deal": "early"})

    assert open_items(ann, receiver.id) == []
    assert messages(ann)[0].status == MessageStatus.EXPIRED


def test_the_sender_says_how_long_a_message_is_kept_or_that_it_must_be_received(ann, tmp_path):
    keep_an_hour = process("hourly", f'<bpmn:sendTask id="tell" messageRef="news_message">'
                                     f'{properties(correlationKey="k", messageTimeToLive="PT1H")}</bpmn:sendTask>')
    must_arrive = process("strict", '<bpmn:sendTask id="insist" name="Insist" messageRef="news_message">'
                                    f'{properties(ifNobodyWaits="fail")}</bpmn:sendTask>')
    ann.deploy([write(tmp_path, "senders.bpmn", definitions(keep_an_hour, must_arrive, messages=("news",)))])

    ann.start("hourly")
    with pytest.raises(ProcessFailed) as failed:
        ann.start("strict")

    assert str(failed.value) == (
        "'insist' (Insist): no instance waits for the message 'news' and no process starts with it, and the "
        "element's ifNobodyWaits is fail: nothing of this step was saved.")
    [kept] = messages(ann)
    assert kept.expires_at - kept.published_at == timedelta(hours=1)
    with ann.reading() as session:
        assert [i.process_key for i in session.scalars(select(ProcessInstance))] == ["hourly"]


def test_a_message_carries_the_variables_the_sender_names(ann, tmp_path):
    sender = process("sender", '<bpmn:intermediateThrowEvent id="tell"><bpmn:extensionElements><camunda:properties>'
                               '<camunda:property name="messageVariables" value="amount"/></camunda:properties>'
                               '</bpmn:extensionElements><bpmn:messageEventDefinition messageRef="news_message"/>'
                               '</bpmn:intermediateThrowEvent>')
    receiver = process("receiver", '<bpmn:receiveTask id="hear" messageRef="news_message"/>',
                       '<bpmn:userTask id="read" name="Read" camunda:assignee="ann"/>')
    ann.deploy([write(tmp_path, "pair.bpmn", definitions(sender, receiver, messages=("news",)))])
    listening = ann.start("receiver", {"secret": "mine"})

    ann.start("sender", {"amount": 70, "secret": "theirs"})

    data = ann.instance(listening.id).data
    assert (data["amount"], data["secret"]) == (70, "mine")


def test_a_message_starts_the_process_whose_start_event_waits_for_it(ann, tmp_path):
    started_by_message = ('<bpmn:process id="inquiry" isExecutable="true"><bpmn:startEvent id="asked">'
                          '<bpmn:messageEventDefinition messageRef="question_message"/></bpmn:startEvent>'
                          '<bpmn:sequenceFlow id="to_answer" sourceRef="asked" targetRef="answer"/>'
                          '<bpmn:userTask id="answer" name="Answer" camunda:assignee="ann"/>'
                          '<bpmn:sequenceFlow id="to_done" sourceRef="answer" targetRef="done"/>'
                          '<bpmn:endEvent id="done"/></bpmn:process>')
    ann.deploy([write(tmp_path, "inquiry.bpmn", definitions(started_by_message, messages=("question",)))])

    publication = ann.publish_message("question", variables={"topic": "prices"})

    [started] = publication.started
    assert open_items(ann, started) == ["Answer"]
    assert ann.instance(started).data["topic"] == "prices"
    [begun] = history(ann, started, EventType.INSTANCE_STARTED)
    assert begun.detail["message"] == "question"


def test_publish_message_can_insist_on_a_receiver(ann):
    with pytest.raises(MessageNotDelivered, match="No instance waits for the message 'ghost' with the correlation key"):
        ann.publish_message("ghost", "K1", if_nobody_waits="fail")
    assert messages(ann) == []


def test_a_receiver_whose_step_fails_is_rolled_back_alone_and_still_waits(ann, tmp_path):
    broken = process("broken", '<bpmn:receiveTask id="hear" messageRef="news_message"/>',
                     '<bpmn:scriptTask id="divide" name="Divide"><bpmn:script>share = 1 / 0</bpmn:script>'
                     '</bpmn:scriptTask>')
    sender = process("teller", '<bpmn:sendTask id="tell" messageRef="news_message"/>',
                     '<bpmn:userTask id="next" name="Next" camunda:assignee="ann"/>')
    ann.deploy([write(tmp_path, "failing.bpmn", definitions(broken, sender, messages=("news",)))])
    receiver = ann.start("broken")

    teller = ann.start("teller")

    assert open_items(ann, teller.id) == ["Next"]
    assert ann.instance(receiver.id).instance.status == "running"
    assert history(ann, receiver.id, EventType.MESSAGE_RECEIVED) == []
    with ann.reading() as session:
        [delivery] = session.scalars(select(MessageDelivery))
    assert delivery.instance_id == receiver.id
    assert "Script task 'divide'" in delivery.error and "ZeroDivisionError" in delivery.error
    assert messages(ann)[0].status == MessageStatus.PENDING
    assert ann.deliver_messages()["delivered"] == 0  # not tried again: its step would fail again


def test_the_sweep_delivers_a_message_a_concurrent_step_missed_once(ann):
    ann.deploy([CONFORMANCE / "receive_task.bpmn"])
    receiver = ann.start("delivery", {"deal": "D7"})
    with ann.transaction() as session:  # as a sender that did not yet see the receiver waiting
        session.add(PublishedMessage(name="contract_signed", correlation_key="D7", payload={"by": "post"},
                                     published_at=ann.clock(), expires_at=ann.clock().replace(year=2027),
                                     status=MessageStatus.PENDING))

    assert ann.deliver_messages() == {"expired": 0, "delivered": 1}
    assert ann.deliver_messages() == {"expired": 0, "delivered": 0}
    assert open_items(ann, receiver.id) == ["Ship the goods"]
    assert len(history(ann, receiver.id, EventType.MESSAGE_RECEIVED)) == 1


def test_a_chain_of_messages_goes_on_in_the_sweep_past_its_limit(ann, tmp_path):
    # Each relay waits for "relay" with its own number and passes it on to the next number.
    relay = ('<bpmn:process id="relay" isExecutable="true"><bpmn:startEvent id="begin"/>'
             '<bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="hear"/>'
             f'<bpmn:receiveTask id="hear" messageRef="relay_message">{properties(correlationKey="${position}")}'
             '</bpmn:receiveTask><bpmn:sequenceFlow id="f2" sourceRef="hear" targetRef="next"/>'
             '<bpmn:scriptTask id="next"><bpmn:script>position = position + 1</bpmn:script></bpmn:scriptTask>'
             '<bpmn:sequenceFlow id="f3" sourceRef="next" targetRef="pass"/>'
             f'<bpmn:sendTask id="pass" messageRef="relay_message">{properties(correlationKey="${position}")}'
             '</bpmn:sendTask><bpmn:sequenceFlow id="f4" sourceRef="pass" targetRef="end"/>'
             '<bpmn:endEvent id="end"/></bpmn:process>')
    ann.deploy([write(tmp_path, "relay.bpmn", definitions(relay, messages=("relay",)))])
    relays = [ann.start("relay", {"position": position}) for position in range(MAX_CHAIN + 3)]

    ann.publish_message("relay", "0")

    def finished():
        return [ann.instance(r.id).instance.status == "completed" for r in relays]

    assert finished() == [True] * MAX_CHAIN + [False] * 3
    while ann.deliver_messages()["delivered"]:
        pass
    assert finished() == [True] * (MAX_CHAIN + 3)


def test_a_message_boundary_event_interrupts_the_task(ann, tmp_path):
    waiting = ('<bpmn:process id="offer" isExecutable="true"><bpmn:startEvent id="begin"/>'
               '<bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="negotiate"/>'
               '<bpmn:userTask id="negotiate" name="Negotiate" camunda:assignee="ann"/>'
               '<bpmn:boundaryEvent id="withdrawn" attachedToRef="negotiate">'
               f'{properties(correlationKey="${offer_id}")}'
               '<bpmn:messageEventDefinition messageRef="withdrawn_message"/></bpmn:boundaryEvent>'
               '<bpmn:sequenceFlow id="f2" sourceRef="negotiate" targetRef="won"/><bpmn:endEvent id="won"/>'
               '<bpmn:sequenceFlow id="f3" sourceRef="withdrawn" targetRef="archive"/>'
               '<bpmn:userTask id="archive" name="Archive" camunda:assignee="ann"/>'
               '<bpmn:sequenceFlow id="f4" sourceRef="archive" targetRef="lost"/><bpmn:endEvent id="lost"/>'
               '</bpmn:process>')
    ann.deploy([write(tmp_path, "offer.bpmn", definitions(waiting, messages=("withdrawn",)))])
    offer = ann.start("offer", {"offer_id": 12})

    ann.publish_message("withdrawn", "12")

    assert open_items(ann, offer.id) == ["Archive"]


def test_an_event_based_gateway_takes_the_message_when_it_comes_first(ann, tmp_path, clock):
    race = ('<bpmn:process id="race" isExecutable="true"><bpmn:startEvent id="begin"/>'
            '<bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="which"/>'
            '<bpmn:eventBasedGateway id="which"/>'
            '<bpmn:sequenceFlow id="f2" sourceRef="which" targetRef="answer"/>'
            f'<bpmn:intermediateCatchEvent id="answer">{properties(correlationKey="${who}")}'
            '<bpmn:messageEventDefinition messageRef="answer_message"/></bpmn:intermediateCatchEvent>'
            '<bpmn:sequenceFlow id="f3" sourceRef="which" targetRef="silence"/>'
            '<bpmn:intermediateCatchEvent id="silence"><bpmn:timerEventDefinition>'
            '<bpmn:timeDuration>P3D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>'
            '<bpmn:sequenceFlow id="f4" sourceRef="answer" targetRef="read"/>'
            '<bpmn:userTask id="read" name="Read the answer" camunda:assignee="ann"/>'
            '<bpmn:sequenceFlow id="f5" sourceRef="read" targetRef="end1"/><bpmn:endEvent id="end1"/>'
            '<bpmn:sequenceFlow id="f6" sourceRef="silence" targetRef="call"/>'
            '<bpmn:userTask id="call" name="Call them" camunda:assignee="ann"/>'
            '<bpmn:sequenceFlow id="f7" sourceRef="call" targetRef="end2"/><bpmn:endEvent id="end2"/>'
            '</bpmn:process>')
    ann.deploy([write(tmp_path, "race.bpmn", definitions(race, messages=("answer",)))])
    answered, silent = ann.start("race", {"who": "anna"}), ann.start("race", {"who": "boris"})

    assert ann.publish_message("answer", "anna").delivered_to == [answered.id]
    clock.advance(days=3)
    ann.wake(silent.id)
    assert (open_items(ann, answered.id), open_items(ann, silent.id)) == (["Read the answer"], ["Call them"])


def test_a_bpmn_correlation_property_is_the_correlation_key(ann):
    ann.deploy([CONFORMANCE / "correlation_property.bpmn"])
    order = ann.start("shop", {"order_id": 42})
    other = ann.start("shop", {"order_id": 43})

    ann.publish_message("order_paid", "42")

    assert (open_items(ann, order.id), open_items(ann, other.id)) == (["Pack the order"], [])
