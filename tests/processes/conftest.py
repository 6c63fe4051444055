"""Fixtures of the CRM domain's tests: the CRM on the process library, and one customer."""

from __future__ import annotations

import pytest

from processes.customers import ContactDraft
from support import LIBRARY
from support.crm import draft


@pytest.fixture
def crm(system, engine):
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
    return system.crm


@pytest.fixture
def customer(crm):
    return crm.register_customer(draft(
        phones=["+7 495 123-45-67"], emails=["info@romashka.ru"], curator="ann",
        contacts=[ContactDraft("Пётр Иванов", position="Director", decision_role="decision_maker",
                               phones=["8 916 000-00-01"])],
    ), by="ann").customer
