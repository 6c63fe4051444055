"""The acceptance flows in a real browser, with screenshots of the main pages."""

from __future__ import annotations

import re

import pytest
from conftest import screenshot
from playwright.sync_api import expect

from support import TEST_BPMN
from support.office import register_customer, start_approval

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

APPROVAL = (TEST_BPMN / "approval.bpmn").read_text()
# A condition that is no expression: the flow "no" is marked on the diagram.
BROKEN = APPROVAL.replace("${!approved}", "${!approved &amp;&amp;}")


def test_an_employee_completes_a_step_after_fixing_a_bad_value(office, clock, sign_in, live_url):
    start_approval(office, key="DEAL-17 Romashka LLC")
    start_approval(office, key="DEAL-18 Vector JSC")
    clock.advance(days=3)
    start_approval(office, key="DEAL-19 Orion Ltd")

    page = sign_in("ann")
    expect(page.locator(".tab-overdue .count")).to_have_text("2")
    expect(page.locator("tr.row-overdue")).to_have_count(2)
    screenshot(page, "inbox")
    page.click("text=Request discount >> nth=0")
    expect(page.locator("h1")).to_have_text("Request discount")

    page.fill("#f-discount", "99")
    page.fill("#f-reason", "loyal customer")
    page.click("text=Complete step")
    expect(page.locator("[data-field-error=discount]")).to_have_text("Must be at most 50.")
    expect(page.locator("#f-reason")).to_have_value("loyal customer")
    screenshot(page, "task-form-validation")

    page.fill("#f-discount", "10")
    page.check("#f-urgent")
    page.select_option("#f-channel", "phone")
    page.click("text=Complete step")
    expect(page.locator(".flash-success")).to_contain_text("Current stage: Review discount")
    expect(page.locator(".tab-overdue .count")).to_have_text("1")


def test_a_russian_reader_sees_the_engines_refusal_in_russian_beside_the_field(office, sign_in):
    start_approval(office, key="DEAL-20 Romashka LLC")
    office.set_locale("ann", "ru")
    page = sign_in("ann")
    page.click("text=Request discount")
    page.fill("#f-discount", "99")
    page.fill("#f-reason", "да")
    page.click("text=Выполнить шаг")
    expect(page.locator("[data-field-error=discount]")).to_have_text("Не больше 50.")
    expect(page.locator("[data-field-error=reason]")).to_have_text("Не меньше 3 символов.")
    expect(page.locator("#problem")).to_have_text("Исправьте значения (см. ниже).")
    screenshot(page, "task-form-validation-ru")


def test_a_manager_reassigns_an_overdue_item_and_the_new_owner_sees_it(office, clock, sign_in):
    instance, item = start_approval(office, key="DEAL-21 Polyus")
    start_approval(office, curator="bob", key="DEAL-22 Sever")
    clock.advance(days=4)

    boss = sign_in("boss")
    boss.click("text=Overdue board")
    expect(boss.locator(f"tr[data-item='{item.id}']")).to_contain_text("working day")
    screenshot(boss, "overdue-board")
    boss.check(f"tr[data-item='{item.id}'] input[type=checkbox]")
    boss.select_option(".sticky-actions select[name=to_user]", "bob")
    boss.fill(".sticky-actions input[name=reason]", "Anna is on sick leave")
    boss.click("text=Reassign selected")
    expect(boss.locator("h1")).to_have_text("Confirm reassignment")
    boss.click("text=Yes, reassign")
    expect(boss.locator(".flash-success")).to_contain_text("Reassigned 1 item to Bob Sales")
    boss.click("text=Team")
    screenshot(boss, "team-workload")

    bob = sign_in("bob")
    expect(bob.locator(f"tr[data-item='{item.id}']")).to_contain_text("DEAL-21 Polyus")

    boss.goto(boss.url.split("/board")[0] + f"/instances/{instance.id}")
    expect(boss.locator(".diagram[data-rendered=true]")).to_have_count(1)
    expect(boss.locator(".djs-element.cf-overdue")).to_have_count(1)
    expect(boss.locator(".timeline")).to_contain_text("Anna is on sick leave")
    screenshot(boss, "instance")


def test_a_designer_sees_the_problem_of_a_broken_file_then_deploys_version_2(office, sign_in, tmp_path):
    broken = tmp_path / "broken" / "approval.bpmn"
    good = tmp_path / "good" / "approval.bpmn"
    broken.parent.mkdir()
    good.parent.mkdir()
    broken.write_text(BROKEN)
    good.write_text(APPROVAL.replace('camunda:dueDate="P2D"', 'camunda:dueDate="P3D"'))

    page = sign_in("dora")
    expect(page).to_have_url(re.compile(r"/processes/$"))
    page.click("text=Upload BPMN")
    page.set_input_files("input[type=file]", str(broken))
    page.click("text=Check and deploy")
    expect(page.locator("tr.problem-error[data-element=no]")).to_contain_text("not a valid expression")
    expect(page.locator(".diagram[data-rendered=true]")).to_have_count(1)
    expect(page.locator(".djs-element.cf-problem")).to_have_count(1)
    screenshot(page, "upload-problems")

    page.set_input_files("input[type=file]", str(good))
    page.click("text=Check and deploy")
    expect(page.locator("h1 .version")).to_have_text("v2")
    expect(page.locator(".flash-success")).to_have_text("Deployed approval version 2.")
    expect(page.locator(".diagram[data-rendered=true]")).to_have_count(1)
    page.click("text=Processes >> nth=0")
    expect(page.locator("tr[data-version='2']")).to_contain_text("latest")
    screenshot(page, "processes")


def test_the_modeler_edits_a_version_and_saves_it_as_the_next_keeping_camunda_attributes(office, sign_in):
    page = sign_in("dora")
    page.goto(page.url + "approval/v1/modeler")
    expect(page.locator("#modeler[data-rendered=true]")).to_have_count(1)
    # Rename the request task the way a designer does: double-click, type, click away.
    page.dblclick("#modeler .djs-element[data-element-id=request]")
    editor = page.locator("#modeler .djs-direct-editing-parent")
    expect(editor).to_be_visible()
    page.keyboard.press("Control+A")
    page.keyboard.type("Ask for a discount")
    page.mouse.click(20, 300)
    screenshot(page, "modeler", full_page=False)
    page.click("#save-model")
    expect(page.locator("h1 .version")).to_have_text("v2")

    latest = office.definitions("approval")[-1]
    with office.reading() as session:
        from engine.models import ProcessDefinition

        xml = session.get(ProcessDefinition, latest.id).sources["approval.bpmn"]
    assert 'name="Ask for a discount"' in xml
    assert "camunda:formField" in xml and 'camunda:assignee="${curator}"' in xml
    # The new version runs: its first step carries the new name and the same form.
    instance = office.start("approval", {"curator": "ann"})
    [item] = office.work_items(instance_id=instance.id)
    assert item.name == "Ask for a discount"
    assert [f.id for f in office.user_task_form(item)] == ["discount", "reason", "valid_until", "urgent", "channel"]


def test_the_layout_works_on_a_phone(office, clock, sign_in):
    start_approval(office, key="DEAL-30 Phone")
    page = sign_in("ann", width=390, height=844)
    expect(page.locator("tr[data-item]")).to_have_count(1)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the inbox must not scroll sideways on a phone"
    screenshot(page, "inbox-phone")


def test_a_customer_files_a_claim_and_an_officer_finds_it_in_the_queue(office, browser, live_app, live_url, sign_in):
    customer = register_customer(live_app, name="Vector JSC", inn=None, email="claims@vector.example")

    context = browser.new_context(viewport={"width": 1000, "height": 900}, locale="ru-RU")
    page = context.new_page()
    page.goto(f"{live_url}/login")
    page.click("text=Подать претензию")
    page.fill("#s-identity", "claims@vector.example")
    page.fill("#s-complainant", "Ivan Petrov")
    page.select_option("#s-reason", "damaged")
    page.fill("#s-essence", "Two boxes arrived crushed; photos attached.")
    screenshot(page, "self-service-claim")
    page.click("button[type=submit]")
    number = page.locator(".claim-number").inner_text()
    assert number.startswith("CL-")
    context.close()

    officer = sign_in("boss")
    officer.click("text=My groups' queue")
    row = officer.locator("tr", has_text=number)
    expect(row).to_contain_text("Triage the claim")

    # The claim is on the customer's card, with its stage.
    officer.goto(f"{live_url}/customers/{customer.id}")
    expect(officer.locator(f"tr[data-process='{number}']")).to_contain_text("triage")
    screenshot(officer, "customer-card")
