"""Fixtures shared by the whole suite: a fresh, empty database per test, on each backend.

``database_url`` runs a test once on SQLite and once on PostgreSQL (test ids ``[sqlite]`` and
``[postgresql]``); ``sqlite_url`` and ``postgres_url`` give one backend only. Each value is an
SQLAlchemy URL; the test creates (and disposes of) its own engine.

PostgreSQL comes from ``CRMFLOW_TEST_POSTGRES_URL``, the URL of a server whose role may create
databases; ``./scripts/test`` starts a throwaway server and sets it. Without it the PostgreSQL
tests are skipped, or fail when ``CRMFLOW_REQUIRE_POSTGRES=1`` (as ``./scripts/test`` and CI
set it), so that a missing server never passes for a green run.
"""

import os
import secrets

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url


def _postgres_server() -> URL:
    url = os.environ.get("CRMFLOW_TEST_POSTGRES_URL")
    if url:
        return make_url(url)
    reason = (
        "CRMFLOW_TEST_POSTGRES_URL is not set; run ./scripts/test to get a throwaway "
        "PostgreSQL server, or point it at one of yours"
    )
    if os.environ.get("CRMFLOW_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (CRMFLOW_REQUIRE_POSTGRES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def _admin_connect(server: URL) -> psycopg.Connection:
    # psycopg takes a libpq URI, which is the SQLAlchemy URL without the "+psycopg" driver.
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)  # CREATE/DROP DATABASE refuse transactions


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A new, empty SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path}/crmflow.db"


@pytest.fixture
def postgres_url():
    """A brand-new PostgreSQL database on the test server, dropped after the test."""
    server = _postgres_server()
    name = f"crmflow_test_{secrets.token_hex(8)}"
    with _admin_connect(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections the test left open (e.g. an engine it never disposed of).
        with _admin_connect(server) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


_BACKEND_FIXTURES = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}


@pytest.fixture(params=list(_BACKEND_FIXTURES))
def database_url(request) -> str:
    """A new, empty database on each backend in turn: ids ``sqlite`` and ``postgresql``."""
    return request.getfixturevalue(_BACKEND_FIXTURES[request.param])


# The fixtures every layer's tests share (tests/support); each folder's conftest.py adds its own.
pytest_plugins = ["support.engine", "support.office", "support.chromium"]
