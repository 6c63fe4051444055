"""Small BPMN files written in the test that uses them: a process around the elements it is about."""

from __future__ import annotations

from pathlib import Path

NAMESPACES = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def definitions(*processes: str, messages: tuple[str, ...] = (), extra: str = "") -> str:
    """A BPMN file: ``messages`` are bpmn:message names (the id is ``<name>_message``)."""
    declared = "".join(f'<bpmn:message id="{name}_message" name="{name}"/>' for name in messages)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NAMESPACES} id="test_definitions" '
            f'targetNamespace="http://crmflow.test">\n{declared}{extra}{"".join(processes)}\n</bpmn:definitions>\n')


_NOT_IN_THE_FLOW = ("<bpmn:laneSet", "<bpmn:dataObject", "<bpmn:dataStoreReference", "<bpmn:textAnnotation",
                    "<bpmn:group")


def process(key: str, *steps: str, executable: str | None = "true") -> str:
    """A process that runs the steps in a row: each step is an element whose id is what follows
    ``id="`` in it (lanes, data, annotations and groups stand beside the flow); the start event
    and the end event are ``<key>_start`` and ``<key>_end``."""
    ids = [f"{key}_start", *(_id_of(step) for step in steps if not step.startswith(_NOT_IN_THE_FLOW)), f"{key}_end"]
    flows = "".join(f'<bpmn:sequenceFlow id="{key}_flow_{n}" sourceRef="{a}" targetRef="{b}"/>'
                    for n, (a, b) in enumerate(zip(ids, ids[1:])))
    attribute = f' isExecutable="{executable}"' if executable is not None else ""
    return (f'<bpmn:process id="{key}" name="{key}"{attribute}><bpmn:startEvent id="{key}_start"/>'
            f'{"".join(steps)}<bpmn:endEvent id="{key}_end"/>{flows}</bpmn:process>')


def properties(**values: str) -> str:
    """camunda:properties, as the extension elements of an element."""
    entries = "".join(f'<camunda:property name="{name}" value="{value}"/>' for name, value in values.items())
    return f"<bpmn:extensionElements><camunda:properties>{entries}</camunda:properties></bpmn:extensionElements>"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _id_of(step: str) -> str:
    return step.split('id="', 1)[1].split('"', 1)[0]
