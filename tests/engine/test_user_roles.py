"""A user's roles are rows of ``user_roles``, read with the user at no extra query."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select

from engine import people
from engine.models import Role, UserRole
from webui.access import person_by_id
from webui.cli import command_line


@contextmanager
def selects(db):
    """The SELECT statements run on ``db`` inside the block."""
    seen: list[str] = []

    def record(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(db, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db, "before_cursor_execute", record)


def test_roles_are_stored_once_each_and_read_back_as_roles(engine):
    engine.add_user("olga", "Olga", roles=["employee", "manager", "employee"])
    engine.add_user("nobody", "No roles", roles=[])
    assert engine.user("olga").role_set == {Role.EMPLOYEE, Role.MANAGER}
    assert engine.user("nobody").role_set == frozenset()
    with engine.reading() as session:
        rows = session.scalars(select(UserRole.role).where(UserRole.user_id == engine.user("olga").id)).all()
    assert sorted(rows) == ["employee", "manager"] and all(isinstance(role, Role) for role in rows)
    with pytest.raises(ValueError, match="Unknown roles \\['boss'\\]"):
        engine.add_user("x", roles=["employee", "boss"])


def test_a_user_looked_up_by_name_brings_their_roles_in_the_same_query(engine):
    engine.add_user("olga", "Olga", roles=["employee", "admin"])
    with engine.reading() as session, selects(engine.db) as seen:
        user = people.get_user(session, "olga")
        assert user.role_set == {"employee", "admin"}
    assert len(seen) == 1


def test_the_signed_in_person_costs_no_query_more_for_the_roles(app, office):
    boss_id = office.user("boss").id
    with app.app_context(), selects(office.db) as seen:
        person = person_by_id(boss_id)
    assert person.roles == {"employee", "manager"} and person.is_manager and not person.is_admin
    assert person.groups == ("heads",) and person.headed_groups == ("sales",)
    # The user with their roles, their groups, the groups they head: as when roles were a column.
    assert len(seen) == 3


def test_the_command_line_adds_and_lists_several_roles(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", sqlite_url)
    runner = CliRunner()
    assert runner.invoke(command_line(), ["init-db"]).exit_code == 0
    added = runner.invoke(command_line(), ["users", "add", "root", "--role", "admin", "--role", "employee"])
    assert added.output == "Added root (admin, employee).\n"
    runner.invoke(command_line(), ["users", "add", "ann", "--group", "sales"])
    listed = runner.invoke(command_line(), ["users", "list"]).output.splitlines()
    assert [line.split()[0] for line in listed] == ["ann", "root"]
    assert "admin,employee" in listed[1] and " employee " in listed[0] and listed[0].endswith("sales")
