"""Versioned deployment: a new version never breaks instances already running on an older one."""

from __future__ import annotations

import shutil

import pytest

from engine.bpmn.validation import BpmnValidationError
from support import TEST_BPMN


def test_identical_content_is_a_no_op_and_changed_content_a_new_version(company, tmp_path):
    source = tmp_path / "approval.bpmn"
    shutil.copy(TEST_BPMN / "approval.bpmn", source)

    [again] = company.deploy([source])
    assert (again.key, again.version, again.created) == ("approval", 1, False)

    source.write_text(source.read_text().replace('name="Review discount"', 'name="Review the discount"'))
    [changed] = company.deploy([source], deployed_by="designer")
    assert (changed.version, changed.created) == (2, True)
    versions = [(d.version, d.deployed_by) for d in company.definitions("approval")]
    assert versions == [(1, None), (2, "designer")]


def test_running_instances_keep_their_version_and_new_ones_start_on_the_latest(company, tmp_path):
    old = company.start("approval", {"curator": "ann"})
    source = tmp_path / "approval.bpmn"
    source.write_text((TEST_BPMN / "approval.bpmn").read_text().replace('name="Review discount"', 'name="Second look"'))
    company.deploy([source])

    new = company.start("approval", {"curator": "ann"})
    for instance in (old, new):
        [item] = company.work_items(instance_id=instance.id)
        company.complete(item.id, {"discount": 5}, "ann")

    assert company.instance(old.id).instance.definition.version == 1
    assert [i.name for i in company.work_items(instance_id=old.id)] == ["Review discount"]
    assert company.instance(new.id).instance.definition.version == 2
    assert [i.name for i in company.work_items(instance_id=new.id)] == ["Second look"]


def test_a_broken_file_deploys_nothing(company, tmp_path):
    broken = tmp_path / "broken.bpmn"
    broken.write_text((TEST_BPMN / "approval.bpmn").read_text().replace("</bpmn:process>", ""))

    with pytest.raises(BpmnValidationError) as error:
        company.deploy([broken])

    assert "broken.bpmn" in str(error.value)
    assert [d.version for d in company.definitions("approval")] == [1]
