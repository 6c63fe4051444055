"""`crmflow serve`: upgrades the schema and serves the app with waitress."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

import webui.cli


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_upgrades_the_database_and_hands_the_app_to_waitress(database_url, monkeypatch):
    served, hooked = {}, []
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("CRMFLOW_SECRET_KEY", "cli-test")
    monkeypatch.setattr("waitress.serve", lambda app, **options: served.update(app=app, **options))
    monkeypatch.setattr(webui.cli, "start_background_jobs", hooked.append)

    result = CliRunner().invoke(webui.cli.command_line(), ["serve", "--port", "8123", "--threads", "4"])

    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/" in result.output
    assert (served["host"], served["port"], served["threads"]) == ("127.0.0.1", 8123, 4)
    assert hooked == [served["app"]]  # the scheduler's hook gets the app that is served
    db = create_engine(database_url)
    assert {"users", "work_items"} <= set(inspect(db).get_table_names())
    db.dispose()
    client = served["app"].test_client()
    assert client.get("/login").status_code == 200
    assert client.get("/").headers["Location"].startswith("/login")


def test_crmflow_is_the_command_of_every_layer():
    from importlib.metadata import entry_points

    assert {ep.value for ep in entry_points(group="console_scripts") if ep.name == "crmflow"} == {"webui.cli:main"}
    assert {"init-db", "worker", "demo", "import-customers", "serve", "tokens"} <= set(webui.cli.command_line().commands)
