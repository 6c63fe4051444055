"""What validation reports: a problem of a file, said so that the person who drew the
diagram can fix it, and the error that carries them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS, DIAG_COMMON_NS, DIAG_INTERCHANGE_NS
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from engine.bpmn.parser import CAMUNDA_NS
from engine.errors import CrmflowError

ERROR = "error"


WARNING = "warning"


_PREFIXES = {
    BPMN_MODEL_NS: "bpmn",
    DIAG_INTERCHANGE_NS: "bpmndi",
    DIAG_COMMON_NS: "dc",
    CAMUNDA_NS: "camunda",
    **{namespace: "dmn" for namespace in DMN_SCHEMAS},
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, said so that the person who drew the diagram can fix it."""

    file: str
    message: str
    line: int | None = None
    element_id: str | None = None
    element_name: str | None = None
    severity: str = ERROR
    element_type: str | None = None  # the BPMN tag, e.g. "userTask"

    def __str__(self) -> str:
        parts = [self.file if self.line is None else f"{self.file}:{self.line}"]
        if self.severity == WARNING:
            parts.append("warning")
        element = " ".join(
            part
            for part in (
                self.element_type,
                f"'{self.element_id}'" if self.element_id else None,
                f"({self.element_name})" if self.element_name else None,
            )
            if part
        )
        if element:
            parts.append(element)
        parts.append(self.message)
        return ": ".join(parts)


class BpmnValidationError(CrmflowError):
    """The bundle cannot be deployed; ``problems`` lists every error (and warning) found.
    The problems are for process designers and stay in English, as the BPMN they name."""

    code = "invalid_bpmn"

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def display_name(element: etree._Element) -> str | None:
    """The element's name on one line: modelers store the diagram's line breaks in it."""
    name = " ".join((element.get("name") or "").split())
    return name or None


def has_error(problems: list[Problem], file: str) -> bool:
    return any(problem.file == file and problem.severity == ERROR for problem in problems)


def in_file_order(problems: list[Problem], files: Mapping[str, bytes]) -> list[Problem]:
    order = {name: position for position, name in enumerate(files)}
    unique = dict.fromkeys(problems)  # a subprocess failure may be reported by each caller
    return sorted(unique, key=lambda problem: (order.get(problem.file, len(order)), problem.line or 0))


def known_ids_hint(ids: Mapping[str, object]) -> str:
    if not ids:
        return ""
    shown = ", ".join(f"'{key}'" for key in list(ids)[:5])
    return f" (the bundle has {shown}{', …' if len(ids) > 5 else ''})"


def shorten_namespaces(text: str) -> str:
    def prefixed(match: re.Match) -> str:
        prefix = _PREFIXES.get(match.group(1))
        return f"{prefix}:" if prefix else match.group(0)

    return re.sub(r"\{([^}]*)\}", prefixed, text)


def line_and_column(source: bytes, offset: int) -> tuple[int, int]:
    line_start = source.rfind(b"\n", 0, offset) + 1
    return source.count(b"\n", 0, offset) + 1, offset - line_start + 1


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
