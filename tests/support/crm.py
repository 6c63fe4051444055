"""Fixtures and helpers of the CRM-domain tests: the CRM on the process library."""

from __future__ import annotations

from processes.customers import CustomerDraft
from processes.normalize import complete_inn

# The classification stage's form of the typical sale, filled in.
CLASSIFIED = {"price_type": "wholesale", "payment_terms": "deferred_30", "delivery_terms": "carrier",
              "outcome": "classified"}


def draft(name="ООО «Ромашка»", inn_prefix="770708389", **fields) -> CustomerDraft:
    fields.setdefault("inn", complete_inn(inn_prefix) if inn_prefix else None)
    return CustomerDraft(name=name, **fields)


def open_item(engine, instance_id):
    [item] = engine.work_items(instance_id=instance_id)
    return item


def step(engine, instance_id, user, **data):
    """Complete the instance's only open item; return the item that follows, if any."""
    item = open_item(engine, instance_id)
    engine.complete(item.id, data, user, expected_version=item.version)
    items = engine.work_items(instance_id=instance_id)
    return items[0] if len(items) == 1 else items
