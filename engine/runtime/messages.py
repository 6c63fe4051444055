"""The message outbox: messages between process instances, correlated Camunda style by the
message's name and a correlation key (engine/bpmn/messages.py says how a diagram sends and
waits for them).

A step that throws a message publishes it in its own transaction, after it has saved its
instance: a row of ``published_messages``, then a delivery to every other running
instance that waits for that name and key (``message_subscriptions``, which every step
keeps in step with its instance). Each delivery is an engine step of the receiving
instance in the same transaction, under a savepoint: the receiver's work items, history
and listeners' records commit with the sender's step; a receiver whose step fails is
rolled back alone, the failure is recorded in ``message_deliveries``, and it still waits.
When no instance waits, a process whose message start event has that name is started
with it (``message_start_events``, recorded at deploy).

A message nobody receives is, as the sending element says (``ifNobodyWaits``):

- ``keep`` (the default): kept for ``messageTimeToLive`` (default P1D); an instance that
  begins to wait for it in that time receives it in the step that makes it wait;
- ``fail``: the sending step fails and nothing of it is saved.

A message is delivered to an instance at most once (a unique row per message and instance),
and once delivered it is not kept for later receivers. The scheduler's sweep
(``Engine.deliver_messages``) expires what outlived its time and delivers what two
concurrent steps missed of each other; messages passed on through more than
``MAX_CHAIN`` instances in one transaction wait for it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.bpmn.messages import OutgoingMessage, Subscription
from engine.bpmn.support import FAIL, IF_NOBODY_WAITS
from engine.errors import ProcessFailed
from engine.models import (
    EventType,
    InstanceStatus,
    MessageDelivery,
    MessageStartEvent,
    MessageStatus,
    MessageSubscription,
    ProcessInstance,
    PublishedMessage,
)
from engine.runtime.assignment import calendar_due
from engine.runtime.history import forget_recorded_since, record, recorded_so_far

log = logging.getLogger(__name__)

# How many instances one transaction passes a chain of messages through before the rest
# waits for the scheduler's sweep (two processes that answer each other would never end).
MAX_CHAIN = 8
_DEPTH = "crmflow_message_depth"

_MESSAGES, _DELIVERIES, _INSTANCES = PublishedMessage.__table__, MessageDelivery.__table__, ProcessInstance.__table__
_SUBSCRIPTIONS, _STARTS = MessageSubscription.__table__, MessageStartEvent.__table__

INSERT_MESSAGE = _MESSAGES.insert()
INSERT_DELIVERY = _DELIVERIES.insert()
INSERT_SUBSCRIPTIONS = _SUBSCRIPTIONS.insert()
DELETE_SUBSCRIPTIONS = _SUBSCRIPTIONS.delete().where(
    _SUBSCRIPTIONS.c.instance_id == bindparam("instance_id"),
    _SUBSCRIPTIONS.c.task_id.in_(bindparam("task_ids", expanding=True)))
MARK_DELIVERED = (_MESSAGES.update().where(_MESSAGES.c.id == bindparam("message_id"))
                  .values(status=MessageStatus.DELIVERED, delivered_at=bindparam("now")))
# A kept message for a task that has just begun to wait (not one the instance sent itself).
KEPT_MESSAGE = (
    select(_MESSAGES.c.id, _MESSAGES.c.name, _MESSAGES.c.correlation_key, _MESSAGES.c.payload,
           _MESSAGES.c.sender_instance_id)
    .where(_MESSAGES.c.status == MessageStatus.PENDING, _MESSAGES.c.name == bindparam("name"),
           _MESSAGES.c.correlation_key == bindparam("key"), _MESSAGES.c.expires_at > bindparam("now"),
           or_(_MESSAGES.c.sender_instance_id.is_(None), _MESSAGES.c.sender_instance_id != bindparam("instance_id")))
    .order_by(_MESSAGES.c.id).limit(1).with_for_update(skip_locked=True)
)
RECEIVERS = (
    select(_SUBSCRIPTIONS.c.instance_id).distinct()
    .join(_INSTANCES, _INSTANCES.c.id == _SUBSCRIPTIONS.c.instance_id)
    .where(_SUBSCRIPTIONS.c.name == bindparam("name"), _SUBSCRIPTIONS.c.correlation_key == bindparam("key"),
           _INSTANCES.c.status == InstanceStatus.RUNNING,
           or_(bindparam("sender", type_=_INSTANCES.c.id.type).is_(None),
               _SUBSCRIPTIONS.c.instance_id != bindparam("sender", type_=_INSTANCES.c.id.type)),
           ~exists().where(_DELIVERIES.c.message_id == bindparam("message_id"),
                           _DELIVERIES.c.instance_id == _SUBSCRIPTIONS.c.instance_id))
    .order_by(_SUBSCRIPTIONS.c.instance_id)
)
STARTS = select(_STARTS.c.definition_id, _STARTS.c.process_key, _STARTS.c.element).where(
    _STARTS.c.name == bindparam("name")).order_by(_STARTS.c.process_key)


@dataclass(frozen=True)
class Message:
    """A published message as its receivers need it."""

    id: int
    name: str
    key: str
    payload: dict
    sender_instance_id: int | None


@dataclass(frozen=True)
class Publication:
    """What became of a published message."""

    message_id: int
    delivered_to: list[int]  # the instances that received it
    started: list[int]  # the instances it started
    kept_until: datetime | None  # when nobody received it: kept until then
    deferred: bool = False  # left for the scheduler's sweep (see MAX_CHAIN)


# (session, instance id, message, now) -> the element that received it, or None when the
# instance did not wait for it after all; raises ProcessFailed when its step fails.
Receiver = Callable[[Session, int, Message, datetime], str | None]
# (session, definition id, message, now) -> the id of the instance it started.
Starter = Callable[[Session, int, Message, datetime], int]


class Messages:
    def __init__(self, receive: Receiver, start: Starter):
        self._receive = receive
        self._start = start

    # -- a step's messages ------------------------------------------------------------

    def sync_subscriptions(self, session: Session, instance_id: int, before: dict, after: dict,
                           now: datetime) -> None:
        """Keep the instance's rows of ``message_subscriptions`` as its waiting tasks are."""
        gone = sorted({subscription.task_id for ref, subscription in before.items() if ref not in after})
        if gone:
            session.execute(DELETE_SUBSCRIPTIONS, {"instance_id": instance_id, "task_ids": gone})
        new = [subscription for ref, subscription in after.items() if ref not in before]
        if new:
            session.execute(INSERT_SUBSCRIPTIONS, [
                {"instance_id": instance_id, "task_id": s.task_id, "element": s.element_id, "name": s.name,
                 "correlation_key": s.key, "created_at": now} for s in new])

    def kept_message_for(self, session: Session, instance_id: int, subscription: Subscription,
                         now: datetime) -> Message | None:
        """A kept message for a task that has just begun to wait, claimed for this step."""
        row = session.execute(KEPT_MESSAGE, {"name": subscription.name, "key": subscription.key, "now": now,
                                             "instance_id": instance_id}).first()
        if row is None:
            return None
        session.execute(MARK_DELIVERED, {"message_id": row.id, "now": now})
        return Message(row.id, row.name, row.correlation_key, row.payload, row.sender_instance_id)

    def received(self, session: Session, instance_id: int, message: Message, element: str, now: datetime) -> None:
        """Record that ``instance_id`` received ``message`` at ``element`` (in its own step)."""
        session.execute(INSERT_DELIVERY, {"message_id": message.id, "instance_id": instance_id, "element": element,
                                          "delivered_at": now, "error": None})
        record(session, EventType.MESSAGE_RECEIVED, now, None, instance_id, task_spec=element,
               detail={"message_id": message.id, "name": message.name, "correlation_key": message.key,
                       "from_instance": message.sender_instance_id})

    def publish_outgoing(self, session: Session, sender_id: int, outgoing: Iterable[OutgoingMessage],
                         now: datetime) -> None:
        """Publish what a step threw (after the step saved its instance)."""
        for message in outgoing:
            definition = message.event_definition
            publication = self.publish(session, message.name, message.key, message.payload, now,
                                       time_to_live=definition.time_to_live, sender_id=sender_id,
                                       sender_element=message.element_id)
            nobody = not (publication.delivered_to or publication.started or publication.deferred)
            if nobody and definition.if_nobody_waits == FAIL:
                name = f" ({message.element_name})" if message.element_name else ""
                raise ProcessFailed(
                    f"'{message.element_id}'{name}: no instance waits for the message '{message.name}'"
                    f"{_with_key(message.key)} and no process starts with it, and the element's {IF_NOBODY_WAITS} "
                    f"is {FAIL}: nothing of this step was saved.")
            record(session, EventType.MESSAGE_SENT, now, None, sender_id, task_spec=message.element_id,
                   detail={"message_id": publication.message_id, "name": message.name,
                           "correlation_key": message.key, "delivered_to": publication.delivered_to,
                           "started": publication.started,
                           "kept_until": publication.kept_until.isoformat() if publication.kept_until else None})

    # -- publishing and delivering ------------------------------------------------------

    def publish(self, session: Session, name: str, key: str, payload: dict, now: datetime, *, time_to_live: str,
                sender_id: int | None = None, sender_element: str | None = None) -> Publication:
        expires_at = calendar_due(now, time_to_live)
        message_id = session.execute(INSERT_MESSAGE, {
            "name": name, "correlation_key": key, "payload": payload, "sender_instance_id": sender_id,
            "sender_element": sender_element, "published_at": now, "expires_at": expires_at,
            "status": MessageStatus.PENDING, "delivered_at": None,
        }).inserted_primary_key[0]
        message = Message(message_id, name, key, payload, sender_id)
        outcome = self.deliver(session, message, now, start_processes=True)
        if outcome is None:  # passed on too far in this transaction: the sweep delivers it
            return Publication(message_id, [], [], expires_at, deferred=True)
        delivered, started = outcome
        return Publication(message_id, delivered, started, None if delivered or started else expires_at)

    def deliver(self, session: Session, message: Message, now: datetime, *,
                start_processes: bool) -> tuple[list[int], list[int]] | None:
        """Hand the message to every instance that waits for it (or, when none does and
        ``start_processes``, start the processes whose message start event has its name);
        (instances that received it, instances it started), and marks it delivered if any.
        None: the chain of messages of this transaction is too long, it waits for the sweep."""
        depth = session.info.get(_DEPTH, 0)
        if depth >= MAX_CHAIN:
            return None
        session.info[_DEPTH] = depth + 1
        try:
            delivered = [instance_id for instance_id in self._receivers(session, message)
                         if self._deliver_to(session, instance_id, message, now)]
            started = []
            if not delivered and start_processes:
                started = [self._start(session, start.definition_id, message, now)
                           for start in session.execute(STARTS, {"name": message.name})]
        finally:
            session.info[_DEPTH] = depth
        if delivered or started:
            session.execute(MARK_DELIVERED, {"message_id": message.id, "now": now})
        return delivered, started

    def _receivers(self, session: Session, message: Message) -> list[int]:
        return list(session.scalars(RECEIVERS, {"name": message.name, "key": message.key,
                                                "sender": message.sender_instance_id, "message_id": message.id}))

    def _deliver_to(self, session: Session, instance_id: int, message: Message, now: datetime) -> bool:
        mark = recorded_so_far(session)
        try:
            with session.begin_nested():
                element = self._receive(session, instance_id, message, now)
                if element is None:
                    return False
                self.received(session, instance_id, message, element, now)
                return True
        except ProcessFailed as failure:
            # The receiver's step is rolled back alone; it still waits, and is not tried again.
            forget_recorded_since(session, mark)
            log.warning("Instance %s could not receive message %s (%s): %s", instance_id, message.id, message.name,
                        failure, extra={"instance_id": instance_id})
            session.execute(INSERT_DELIVERY, {"message_id": message.id, "instance_id": instance_id, "element": None,
                                              "delivered_at": now, "error": str(failure)})
            return False

    # -- the scheduler's sweep ----------------------------------------------------------

    @staticmethod
    def expire(session: Session, now: datetime) -> int:
        return session.execute(
            update(PublishedMessage)
            .where(PublishedMessage.status == MessageStatus.PENDING, PublishedMessage.expires_at <= now)
            .values(status=MessageStatus.EXPIRED)
        ).rowcount

    @staticmethod
    def undelivered(session: Session, now: datetime, limit: int) -> list[int]:
        """Kept messages that a running instance waits for: missed by a concurrent step."""
        waiting = (
            select(PublishedMessage.id).distinct()
            .join(MessageSubscription, and_(MessageSubscription.name == PublishedMessage.name,
                                            MessageSubscription.correlation_key == PublishedMessage.correlation_key))
            .where(PublishedMessage.status == MessageStatus.PENDING, PublishedMessage.expires_at > now,
                   or_(PublishedMessage.sender_instance_id.is_(None),
                       MessageSubscription.instance_id != PublishedMessage.sender_instance_id),
                   ~exists().where(MessageDelivery.message_id == PublishedMessage.id,
                                   MessageDelivery.instance_id == MessageSubscription.instance_id))
            .order_by(PublishedMessage.id).limit(limit)
        )
        return list(session.scalars(waiting))

    @staticmethod
    def lock_pending(session: Session, message_id: int, now: datetime) -> Message | None:
        row = session.execute(
            select(PublishedMessage.id, PublishedMessage.name, PublishedMessage.correlation_key,
                   PublishedMessage.payload, PublishedMessage.sender_instance_id)
            .where(PublishedMessage.id == message_id, PublishedMessage.status == MessageStatus.PENDING,
                   PublishedMessage.expires_at > now)
            .with_for_update(skip_locked=True)
        ).first()
        return Message(*row) if row is not None else None


def _with_key(key: str) -> str:
    return f" with the correlation key '{key}'" if key else ""


def record_start_events(session: Session, definition_id: int, key: str, names: list[tuple[str, str]]) -> None:
    """The message start events of the latest version of ``key``: only that version starts by message."""
    session.execute(_STARTS.delete().where(_STARTS.c.process_key == key, _STARTS.c.definition_id != definition_id))
    known = set(session.scalars(select(_STARTS.c.element).where(_STARTS.c.definition_id == definition_id)))
    rows = [{"definition_id": definition_id, "process_key": key, "element": element, "name": name}
            for element, name in names if element not in known]
    if rows:
        session.execute(insert(_STARTS), rows)
