"""Fixtures and helpers of the CRM-domain tests: the CRM on the process library."""

from __future__ import annotations

import pytest

from processes.crm import Crm
from processes.customers import ContactDraft, CustomerDraft
from processes.normalize import complete_inn
from support import LIBRARY

# The classification stage's form of the typical sale, filled in.
CLASSIFIED = {"price_type": "wholesale", "payment_terms": "deferred_30", "delivery_terms": "carrier",
              "outcome": "classified"}


@pytest.fixture
def crm(engine):
    """A CRM on a migrated database: boss heads sales, olga and oleg investigate claims,
    ann and bob sell, root is an admin; the process library is deployed."""
    engine.add_user("boss", "Boris Head", roles=["employee", "manager"])
    engine.add_user("ann", "Anna Sales", manager="boss")
    engine.add_user("bob", "Bob Sales", manager="boss")
    engine.add_user("olga", "Olga Claims", manager="boss")
    engine.add_user("oleg", "Oleg Claims", manager="boss")
    engine.add_user("ivan", "Ivan Warehouse")
    engine.add_user("root", "Admin", roles=["admin"])
    engine.add_group("sales", "Sales", head="boss", members=["ann", "bob"])
    engine.add_group("heads", "Heads of department", members=["boss"])
    engine.add_group("claims", "Claims", head="boss", members=["olga", "oleg"])
    engine.add_group("warehouse", "Warehouse", members=["ivan"])
    engine.deploy([LIBRARY])
    return Crm(engine)


def draft(name="ООО «Ромашка»", inn_prefix="770708389", **fields) -> CustomerDraft:
    fields.setdefault("inn", complete_inn(inn_prefix) if inn_prefix else None)
    return CustomerDraft(name=name, **fields)


@pytest.fixture
def customer(crm):
    return crm.register_customer(draft(
        phones=["+7 495 123-45-67"], emails=["info@romashka.ru"], curator="ann",
        contacts=[ContactDraft("Пётр Иванов", position="Director", decision_role="decision_maker",
                               phones=["8 916 000-00-01"])],
    ), by="ann").customer


def open_item(engine, instance_id):
    [item] = engine.work_items(instance_id=instance_id)
    return item


def step(engine, instance_id, user, **data):
    """Complete the instance's only open item; return the item that follows, if any."""
    item = open_item(engine, instance_id)
    engine.complete(item.id, data, user, expected_version=item.version)
    items = engine.work_items(instance_id=instance_id)
    return items[0] if len(items) == 1 else items
