"""``crmflow demo``: a believable company, loaded once, refused twice, reset on request."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from engine.models import ItemStatus, User, WorkItem
from engine.runtime import Engine
from processes.demo import DEMO_USERS
from processes.models import Claim, Customer, Deal
from processes.stages import STAGE_CODES

CRMFLOW = Path(sys.executable).parent / "crmflow"


def crmflow(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRMFLOW_DATABASE_URL": database_url}
    # Run from elsewhere: the demo finds the process library beside its package.
    return subprocess.run([str(CRMFLOW), *args], capture_output=True, text=True, env=env, timeout=900, cwd="/")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_company_is_loaded_refused_twice_and_reset(database_url):
    loaded = crmflow(database_url, "demo", "--customers", "60")
    assert loaded.returncode == 0, loaded.stderr
    assert "Demo logins" in loaded.stdout and "petrov-demo" in loaded.stdout

    engine = Engine(database_url)
    with engine.reading() as session:
        users = {u.username: u for u in session.scalars(select(User))}
        assert {u.username for u in DEMO_USERS} == set(users)
        assert all(check_password_hash(users[u.username].password_hash, u.password) for u in DEMO_USERS)
        assert session.scalar(select(func.count()).select_from(Customer)) == 60
        deals = list(session.scalars(select(Deal)))
        assert {d.kind for d in deals} == {"typical", "manual", "project"}
        running = {d.current_stage for d in deals if d.status == "in_progress" and d.kind != "project"}
        assert running == set(STAGE_CODES)
        assert {d.status for d in deals} == {"in_progress", "won", "lost"}
        assert {c.status for c in session.scalars(select(Claim))} == {
            "triage", "investigation", "resolution", "informing", "closed"}
        overdue = session.scalar(select(func.count()).select_from(WorkItem).where(
            WorkItem.status == ItemStatus.OPEN, WorkItem.due_at < datetime.now(timezone.utc)))
        assert overdue > 5
    engine.dispose()

    refused = crmflow(database_url, "demo")
    assert refused.returncode == 1
    assert "already has the demo data" in refused.stderr and "--reset" in refused.stderr

    reset = crmflow(database_url, "demo", "--reset", "--customers", "30")
    assert reset.returncode == 0, reset.stderr
    engine = Engine(database_url)
    with engine.reading() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 30
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_start_prints_the_demo_logins_that_still_work(database_url, monkeypatch):
    from click.testing import CliRunner

    from processes.demo import load_demo
    from webui.cli import command_line

    monkeypatch.setenv("CRMFLOW_DATABASE_URL", database_url)
    load_demo(database_url, customers=5, echo=lambda line: None)
    engine = Engine(database_url)
    with engine.transaction() as session:  # ivanova chose a password of her own
        session.scalar(select(User).where(User.username == "ivanova")).password_hash = "scrypt:changed"
    engine.dispose()

    printed = CliRunner().invoke(command_line(), ["demo", "--logins"])
    assert printed.exit_code == 0, printed.output
    assert "  petrov       petrov-demo " in printed.output
    assert "ivanova" not in printed.output
    assert CliRunner().invoke(command_line(), ["users", "list"]).output.count("\n") == len(DEMO_USERS)
