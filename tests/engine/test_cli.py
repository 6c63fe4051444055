"""The crmflow command line, end to end on a SQLite file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from support import DATA, TEST_BPMN
from webui.cli import command_line


@pytest.fixture
def run(sqlite_url, monkeypatch):
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", sqlite_url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(command_line(), list(args))
        assert result.exit_code == code, result.output
        return result.output

    invoke("init-db")
    return invoke


def test_a_process_from_deploy_to_completion(run):
    run("users", "add", "ann", "--name", "Anna Sales", "--group", "sales")
    run("users", "add", "boss", "--role", "manager", "--group", "heads")
    assert "ann" in run("users", "list")

    assert run("validate", str(TEST_BPMN / "approval.bpmn")).startswith("OK")
    assert "approval: version 1 (deployed)" in run("deploy", str(TEST_BPMN / "approval.bpmn"))
    assert "approval: version 1 (unchanged)" in run("deploy", str(TEST_BPMN / "approval.bpmn"))

    started = run("start", "approval", "--data", json.dumps({"curator": "ann"}), "--business-key", "DEAL-7")
    assert "Started instance 1 of approval" in started
    assert "Request discount -> ann" in started

    listing = run("tasks", "--user", "ann")
    assert "Request discount" in listing and "v1" in listing

    bad = run("complete", "1", "--user", "ann", "--data", '{"discount": "lots"}', code=1)
    assert "discount: must be a whole number" in bad
    done = run("complete", "1", "--user", "ann", "--data", '{"discount": 5}', "--expected-version", "1")
    assert "next: work item 2: Review discount -> group:heads" in done
    assert "Review discount" in run("tasks", "--user", "boss")


def test_validate_exits_1_and_names_the_problem(run, tmp_path):
    broken = tmp_path / "broken.bpmn"
    broken.write_text("<bpmn:definitions")
    output = run("validate", str(broken), code=1)
    assert "broken.bpmn" in output


def test_bad_input_is_one_clear_line(run):
    assert "no crmflow user called 'nobody'" in run("complete", "1", "--user", "nobody", code=1)
    assert "must be a JSON object" in run("start", "x", "--data", "[1]", code=2)
    assert "No process with key 'x'" in run("start", "x", code=1)


def test_deploying_a_file_without_a_process_exits_1_and_says_why(run):
    output = run("deploy", str(DATA / "conformance" / "no_process.bpmn"), code=1)

    assert "no_process.bpmn:5: definitions 'no_process_definitions': The file defines no process" in output
