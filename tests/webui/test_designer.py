"""The designer's side: definitions with versions and instance counts, uploading with
validation problems, deploying, the modeler's save, and the instance page."""

from __future__ import annotations

import io

from support import TEST_BPMN
from support.office import GOOD_REQUEST, as_user, start_approval, text

APPROVAL = (TEST_BPMN / "approval.bpmn").read_text()
# Version 2 of the approval process: a longer deadline for the request.
APPROVAL_V2 = APPROVAL.replace('camunda:dueDate="P2D"', 'camunda:dueDate="P3D"')
# A flow that points at nothing: a problem with a line and an element to show.
BROKEN = APPROVAL.replace('<bpmn:sequenceFlow id="f2" sourceRef="request" targetRef="review"/>',
                          '<bpmn:sequenceFlow id="f2" sourceRef="request" targetRef="nowhere"/>')


def upload(client, content: str, name="approval.bpmn", action="deploy"):
    return client.post("/processes/upload", data={"files": (io.BytesIO(content.encode()), name), "action": action},
                       content_type="multipart/form-data")


def test_definitions_list_versions_with_running_instance_counts(app, office):
    start_approval(office)
    start_approval(office, key="DEAL-2")
    page = text(as_user(app, "dora").get("/processes/"))
    assert "Discount approval" in page and "v1" in page
    html = as_user(app, "dora").get("/processes/").get_data(as_text=True)
    row = html.split('data-version="1"')[1].split("</tr>")[0]
    assert 'running-count">2<' in row


def test_a_broken_upload_lists_each_problem_with_file_line_and_element_and_deploys_nothing(app, office):
    response = upload(as_user(app, "dora"), BROKEN)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    page = text(response)
    assert "1 problem prevents deploying" in page
    line = next(n for n, line in enumerate(BROKEN.splitlines(), 1) if 'targetRef="nowhere"' in line)
    row = html.split('class="problem problem-error" data-element="f2"')[1].split("</tr>")[0]
    assert "approval.bpmn" in row and f">{line}<" in row and "nowhere" in row
    # The diagram is shown with the faulty element marked.
    assert '"problem": ["f2"]' in html or '{"problem": ["f2"]}' in html.replace("\\u0022", '"')
    assert [d.version for d in office.definitions("approval")] == [1]


def test_a_good_upload_deploys_the_next_version(app, office):
    client = as_user(app, "dora")
    response = upload(client, APPROVAL_V2)
    assert response.status_code == 302
    assert response.headers["Location"] == "/processes/approval/v2"
    page = text(client.get("/processes/approval/v2"))
    assert "Deployed approval version 2." in page
    assert [d.version for d in office.definitions("approval")] == [1, 2]
    assert office.definitions("approval")[1].deployed_by == "dora"
    again = upload(client, APPROVAL_V2)  # same content: no new version
    assert "unchanged" in text(client.get(again.headers["Location"]))


def test_check_only_validates_without_deploying(app, office):
    response = upload(as_user(app, "dora"), APPROVAL_V2, action="validate")
    assert response.status_code == 200
    assert "No problems found" in text(response)
    assert len(office.definitions("approval")) == 1


def test_only_bpmn_and_dmn_files_are_accepted(app, office):
    response = upload(as_user(app, "dora"), "hello", name="notes.txt")
    assert response.status_code == 400
    assert "only .bpmn and .dmn files" in text(response)


def test_the_modeler_saves_a_valid_diagram_as_a_new_version_and_refuses_a_broken_one(app, office):
    client = as_user(app, "dora")
    page = client.get("/processes/approval/v1/modeler").get_data(as_text=True)
    assert "bpmn-modeler.production.min.js" in page and "camunda.json" in page

    refused = client.post("/processes/approval/v1/modeler", data={"xml": BROKEN})
    assert refused.status_code == 422
    assert any(p["element_id"] == "f2" for p in refused.get_json()["problems"])
    assert len(office.definitions("approval")) == 1

    saved = client.post("/processes/approval/v1/modeler", data={"xml": APPROVAL_V2})
    assert saved.get_json()["ok"] is True and saved.get_json()["version"] == 2
    unchanged = client.post("/processes/approval/v2/modeler", data={"xml": APPROVAL_V2})
    assert unchanged.status_code == 409


def test_a_version_can_be_downloaded_as_the_bpmn_file(app, office):
    response = as_user(app, "dora").get("/processes/approval/v1/bpmn")
    assert response.headers["Content-Disposition"] == 'attachment; filename="approval.bpmn"'
    assert response.get_data(as_text=True) == APPROVAL


def test_the_instance_page_marks_done_current_and_overdue_steps_and_shows_history_and_data(app, office, clock):
    instance, item = start_approval(office)
    office.complete(item.id, GOOD_REQUEST, "ann")
    clock.advance(hours=5)  # the review is due in 4 hours: overdue now
    response = as_user(app, "boss").get(f"/instances/{instance.id}")
    html = response.get_data(as_text=True)
    markers = html.split('class="diagram-markers">')[1].split("</script>")[0]
    assert '"completed": ["request", "start"]' in markers
    assert '"current": ["review"]' in markers and '"overdue": ["review"]' in markers
    page = text(response)
    assert "Task completed" in page and "Stage entered" in page
    assert "loyal customer" in page  # the data entered in the request step


def test_the_bpmn_viewer_is_served_locally(app):
    response = app.test_client().get("/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js")
    assert response.status_code == 200 and len(response.data) > 100_000
    assert app.test_client().get("/vendor/bpmn-js/../../package.json").status_code == 404
    assert app.test_client().get("/vendor/left-pad/index.js").status_code == 404
