"""Fixtures and helpers of the web UI and API tests: a small company with passwords, the
approval process, the app, and a test client."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import MetaData

from processes.migrations import upgrade as upgrade_crm_schema
from support import LIBRARY, TEST_BPMN
from webui import create_app
from webui.auth import hash_password

PASSWORD = "correct horse 7"
# scrypt is slow on purpose; one hash serves every test user.
PASSWORD_HASH = hash_password(PASSWORD)
GOOD_REQUEST = {"discount": "10", "reason": "loyal customer", "valid_until": "2026-12-31", "urgent": "true",
                "channel": "email"}


def build_office(engine) -> None:
    """boss heads sales (ann, bob) and is in heads; carl heads support (sue); dora designs;
    root is the admin; eve belongs to no department."""
    def user(name, display, **extra):
        engine.add_user(name, display, password_hash=PASSWORD_HASH, **extra)

    user("boss", "Boris Head", roles=["employee", "manager"], locale="en")
    user("ann", "Anna Sales", manager="boss", locale="en")
    user("bob", "Bob Sales", manager="boss", locale="en")
    user("carl", "Carl Support", roles=["employee", "manager"], locale="en")
    user("sue", "Sue Support", manager="carl", locale="en")
    user("eve", "Eve Other", locale="en")
    user("dora", "Dora Designer", roles=["designer"], locale="en")
    user("root", "Root Admin", roles=["admin"], locale="en")
    engine.add_group("sales", "Sales", head="boss", members=["ann", "bob"])
    engine.add_group("heads", "Heads of department", members=["boss"])
    engine.add_group("support", "Support", head="carl", members=["sue"])
    upgrade_crm_schema(engine.db)
    engine.deploy([TEST_BPMN / "approval.bpmn"], deployed_by="dora")
    engine.deploy([LIBRARY], deployed_by="dora")


@pytest.fixture
def office(engine):
    build_office(engine)
    return engine


@pytest.fixture
def app(system, office):
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test-secret",
                       "BABEL_DEFAULT_TIMEZONE": "UTC"}, system=system)



def login(client, username: str, password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


def as_user(app, username: str):
    client = app.test_client()
    response = login(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def text(response) -> str:
    """The page's visible text with tags removed and spaces collapsed, for assertions."""
    body = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", body).replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")


def start_approval(engine, curator="ann", key="DEAL-1"):
    instance = engine.start("approval", {"curator": curator}, started_by="boss", business_key=key)
    [item] = engine.work_items(instance_id=instance.id)
    return instance, item


def crm_of(app):
    """The app's CRM facade."""
    return app.extensions["crmflow"].crm


def register_customer(app, name="Romashka LLC", inn="7707083893", email="info@romashka.example", **extra):
    from processes.customers import CustomerDraft

    draft = CustomerDraft(name=name, inn=inn, emails=[email] if email else [], curator="ann", **extra)
    return crm_of(app).register_customer(draft, "ann").customer


# Counted by every POST of the self-service form, refused or not (webui/limits.py).
_COUNTERS = {"rate_limit_counters"}


def database_rows(engine) -> dict[str, list[str]]:
    """Every row of every table (but the rate limits' counters), to show that a refused
    request wrote nothing."""
    metadata = MetaData()
    metadata.reflect(engine.db)
    with engine.db.connect() as connection:
        return {name: sorted(map(repr, connection.execute(table.select())))
                for name, table in metadata.tables.items() if name not in _COUNTERS}
