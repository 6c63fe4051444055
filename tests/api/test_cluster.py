"""Several machines on one PostgreSQL, for real: two web processes (gunicorn, through
``crmflow serve --workers``) and two ``crmflow worker`` schedulers. 1,000 instances are
started and worked through the REST API of both web processes at once, each completion
raced from both; nothing may be lost or doubled, every lost race must be a clean 409,
and every breached deadline escalated exactly once."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.deadlines.escalation import BREACH, ESCALATED
from engine.models import Escalation, HistoryEvent, Notification, ProcessInstance, WorkItem
from engine.runtime import Engine
from processes.system import build_system
from support.mail import free_port
from webui.api import tokens as token_store

CRMFLOW = Path(sys.executable).with_name("crmflow")
INSTANCES = 1_000
BREACHED_EVERY = 4  # every 4th instance is started already past its deadline and left open
CLIENT_THREADS = 8
PROCESS_TIME_LIMIT = 300  # seconds: no server or worker outlives a broken run

WEB_REQUEST = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="web_defs" targetNamespace="http://crmflow.test">
  <bpmn:process id="web_request" name="Request from the website" isExecutable="true">
    <bpmn:extensionElements>
      <camunda:properties><camunda:property name="escalation.headAfter" value="none"/></camunda:properties>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:userTask id="answer" name="Answer the request" camunda:assignee="${owner}" camunda:dueDate="${due}">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="reply" type="string">
            <camunda:validation><camunda:constraint name="required"/></camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


class Api:
    """Calls one web process with one user's token: a connection per request, so that a
    POST is never re-sent on a keep-alive connection the server closed meanwhile."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()


def spawn(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(CRMFLOW), *arguments], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until(condition, timeout: float, processes, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args[1]} exited early ({process.returncode}) while waiting for {what}")
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout} s")


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_web_processes_and_two_workers_on_one_postgresql(database_url, tmp_path):
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    engine.add_user("boss", "Boris Head", roles=["employee", "manager"])
    engine.add_user("ann", "Anna Sales", manager="boss")
    engine.add_user("bob", "Bob Sales", manager="boss")
    (tmp_path / "web_request.bpmn").write_text(WEB_REQUEST)
    engine.deploy([tmp_path / "web_request.bpmn"])
    owners = {name: token_store.create_token(engine, name, "cluster test").secret for name in ("ann", "bob")}

    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRMFLOW_WEBHOOK", "CRMFLOW_SMTP"))}
    env.update(CRMFLOW_DATABASE_URL=database_url, CRMFLOW_SECRET_KEY="cluster-test-secret")
    ports = [free_port(), free_port()]
    processes = [spawn(["worker", "--poll", "0.2", "--sweep-interval", "2", "--run-for", str(PROCESS_TIME_LIMIT)],
                       env, tmp_path / f"worker-{n}.log") for n in range(2)]
    processes += [spawn(["serve", "--workers", "1", "--threads", "4", "--port", str(port)],
                        {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{port}")},
                        tmp_path / f"web-{port}.log") for port in ports]
    try:
        wait_until(lambda: all(healthy(port) for port in ports), 60, processes, "both web processes healthy")
        apis = {(port, owner): Api(port, token) for port in ports for owner, token in owners.items()}
        outcomes = drive(apis, ports)
        wait_until(lambda: pending_breaches(engine) == 0, 60, processes, "every breach escalated")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the workers finish the sweeps they are in
        exits = [process.wait(timeout=60) for process in processes]
    logs = {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    assert exits == [0, 0, 0, 0], logs
    # A sweep after the workers' finds nothing left to fire: no rung fires a second time.
    assert system.escalation.sweep().fired == 0

    # Nothing lost: every start answered 201 and is in the database, once.
    assert Counter(status for status, _ in outcomes["start"]) == {201: INSTANCES}
    assert {port for port, _ in outcomes["served_by"]} == set(ports)
    # Every completion raced from both web processes: exactly one 200, the other a clean 409.
    races = outcomes["races"]
    assert len(races) == INSTANCES - INSTANCES // BREACHED_EVERY
    for pair in races:
        assert sorted(status for status, _ in pair) == [200, 409], pair
        [(_, lost)] = [(status, body) for status, body in pair if status == 409]
        assert lost["code"] in ("stale_work_item", "work_item_closed") and lost["message"], lost

    completed = INSTANCES - INSTANCES // BREACHED_EVERY
    with engine.reading() as session:
        def count(model, *where):
            return session.scalar(select(func.count()).select_from(model).where(*where))

        assert count(ProcessInstance) == INSTANCES
        assert session.scalar(select(func.count(func.distinct(ProcessInstance.business_key)))) == INSTANCES
        assert count(ProcessInstance, ProcessInstance.status == "completed") == completed
        assert count(WorkItem) == INSTANCES
        assert count(WorkItem, WorkItem.status == "completed") == completed
        assert count(HistoryEvent, HistoryEvent.type == "work_item_completed") == completed
        # Every breach escalated exactly once: one history event, and one notice to the owner
        # and one to their manager, per breached item.
        breached = INSTANCES // BREACHED_EVERY
        assert count(Escalation, Escalation.level == BREACH, Escalation.status == "done") == breached
        assert count(HistoryEvent, HistoryEvent.type == ESCALATED) == breached
        assert count(Notification) == 2 * breached
        assert session.scalar(select(func.count()).select_from(
            select(Notification.escalation_id, Notification.user_id)
            .group_by(Notification.escalation_id, Notification.user_id).having(func.count() > 1).subquery())) == 0
    engine.dispose()


def drive(apis: dict[tuple[int, str], Api], ports: list[int]) -> dict[str, list]:
    """Start every instance through one web process, then complete its step from both at once."""
    outcomes: dict[str, list] = {"start": [], "races": [], "served_by": []}
    lock = threading.Lock()
    now = datetime.now(timezone.utc)

    def one(n: int) -> None:
        owner = ("ann", "bob")[n % 2]
        port = ports[n % 2]
        breached = n % BREACHED_EVERY == 0
        due = now - timedelta(hours=1) if breached else now + timedelta(days=30)
        status, body = apis[(port, owner)].call("POST", "/api/v1/instances", {
            "process_key": "web_request", "business_key": f"WEB-{n}",
            "data": {"owner": owner, "due": due.isoformat()}})
        with lock:
            outcomes["start"].append((status, body))
            outcomes["served_by"].append((port, n))
        if status != 201 or breached:
            return
        [item] = body["open_items"]
        barrier = threading.Barrier(2)
        pair: list[tuple[int, dict]] = []

        def complete(api: Api) -> None:
            barrier.wait()
            pair.append(api.call("POST", f"/api/v1/work-items/{item['id']}/complete",
                                 {"expected_version": item["version"], "data": {"reply": f"answered via {api.port}"}}))

        racers = [threading.Thread(target=complete, args=(apis[(p, owner)],)) for p in ports]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        with lock:
            outcomes["races"].append(pair)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(one, range(INSTANCES)))
    return outcomes


def pending_breaches(engine: Engine) -> int:
    with engine.reading() as session:
        return session.scalar(select(func.count()).select_from(Escalation).where(
            Escalation.level == BREACH, Escalation.status == "pending",
            Escalation.due_at <= datetime.now(timezone.utc)))
