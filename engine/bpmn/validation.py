"""Load BPMN and DMN files safely, and explain every problem in words a process designer can act on.

A *bundle* is the set of files deployed together: call activities and business-rule tasks may
refer to processes and decisions in any file of it. ``load_bundle`` reads the files with a
hardened XML parser, checks them against the BPMN/DMN schemas and against what crmflow can run,
and only then lets SpiffWorkflow build the process specs. It gathers every problem it can find
before giving up, each naming the file, the line and the element, never a Python traceback.
"""

from __future__ import annotations

import ast
import copy
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS, DIAG_COMMON_NS, DIAG_INTERCHANGE_NS
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from engine.errors import CrmflowError
from engine.bpmn.expressions import camunda_to_python, is_wrapped, iso8601_literal
from engine.bpmn.parser import CAMUNDA_NS, CrmParser

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_BUNDLE_BYTES = 20 * 1024 * 1024
# The largest real diagram we know has 2,400 elements. SpiffWorkflow indexes a process in a
# time that grows with the square of its size: 10,000 elements of the worst kind take a second.
MAX_ELEMENTS_PER_FILE = 10_000
MAX_SCHEMA_PROBLEMS_PER_FILE = 20

ERROR = "error"
WARNING = "warning"

_DMN_NAMESPACE = re.compile(r"^https?://www\.omg\.org/spec/DMN/")
_PREFIXES = {
    BPMN_MODEL_NS: "bpmn",
    DIAG_INTERCHANGE_NS: "bpmndi",
    DIAG_COMMON_NS: "dc",
    CAMUNDA_NS: "camunda",
    **{namespace: "dmn" for namespace in DMN_SCHEMAS},
}
# A DOCTYPE may only appear in the prolog: before it, just the XML declaration, comments,
# processing instructions and white space. The atomic group and possessive star keep the
# scan linear: plain (...)* backtracks exponentially on a prolog of many <?...?>.
_DOCTYPE_IN_PROLOG = re.compile(r"\ufeff?(?>\s+|<\?.*?\?>|<!--.*?-->)*+<!DOCTYPE", re.DOTALL)
_PYTHON_SCRIPT_FORMATS = {None, "python", "python3"}
_CONDITION_LANGUAGES = {"", "python", "juel"}
_SUBPROCESS_TAGS = ("subProcess", "transaction")


# --- What callers get -----------------------------------------------------------------------


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


@dataclass
class ProcessModel:
    """One executable process found in a bundle."""

    key: str
    name: str | None
    spec: BpmnProcessSpec
    subprocess_specs: dict


@dataclass
class Bundle:
    files: dict[str, bytes]
    processes: dict[str, ProcessModel]
    warnings: list[Problem] = field(default_factory=list)


def load_bundle(files: Mapping[str, bytes]) -> Bundle:
    """Parse BPMN and DMN files together; raise ``BpmnValidationError`` listing every problem."""
    problems = list(_bundle_size_problems(files))
    documents = []
    for name, source in files.items():
        document = _read_document(name, source)
        if isinstance(document, Problem):
            problems.append(document)
        else:
            documents.append(document)

    index = _BundleIndex(documents)
    problems += _check_documents(index)
    problems += _check_processes(index)

    # SpiffWorkflow stops at the first problem it meets and mostly rediscovers ours, phrased
    # worse; so it only sees the files we found nothing wrong with.
    clean = [document for document in documents if not _has_error(problems, document.file)]
    parser, added, spiff_problems = _spiff_parser(clean, index)
    processes, parse_problems = _parse_processes(parser, added, index)
    problems = _in_file_order(spiff_problems + parse_problems + problems, files)

    if any(problem.severity == ERROR for problem in problems):
        raise BpmnValidationError(problems)
    return Bundle(files=dict(files), processes=processes, warnings=problems)


def validate_paths(paths: Iterable[str | Path]) -> list[Problem]:
    """Check BPMN and DMN files, and directories of them, as one bundle; report, never raise."""
    files, problems = _collect_files(paths)
    if not files:
        return problems
    try:
        bundle = load_bundle(files)
    except BpmnValidationError as error:
        return problems + error.problems
    return problems + bundle.warnings


# --- Reading files safely -------------------------------------------------------------------


@dataclass
class _Document:
    file: str
    root: etree._Element
    elements: dict[str, etree._Element]  # by id; the first one when an id is used twice

    @property
    def is_dmn(self) -> bool:
        return bool(_DMN_NAMESPACE.match(etree.QName(self.root).namespace or ""))

    def children(self, tag: str) -> list[etree._Element]:
        return self.root.findall(f"{{{BPMN_MODEL_NS}}}{tag}")


def _safe_xml_parser() -> etree.XMLParser:
    # No entity expansion, no DTD, no network, libxml2's size limits: a BPMN file cannot make
    # the server read local files, call other hosts or exhaust memory. One parser per call,
    # because lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        encoding="utf-8",
    )


def _read_document(name: str, source: bytes) -> _Document | Problem:
    if len(source) > MAX_FILE_BYTES:
        return Problem(
            name,
            f"The file is {_megabytes(len(source))}; crmflow accepts BPMN and DMN files "
            f"of up to {_megabytes(MAX_FILE_BYTES)}.",
        )
    if not source.strip():
        return Problem(name, "The file is empty.")
    if b"\0" in source:
        return Problem(name, "The file is binary data, not a BPMN or DMN (XML) file.")
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_and_column(source, error.start)
        return Problem(
            name,
            f"The file is not UTF-8 text (byte 0x{source[error.start]:02x} at column {column}): "
            "save it with UTF-8 encoding.",
            line=line,
        )
    # Looked for before parsing: libxml2 may stop at the entities first, with a message
    # that does not say what the designer should remove.
    doctype = _DOCTYPE_IN_PROLOG.match(text)
    if doctype:
        return _doctype_problem(name, line=text.count("\n", 0, doctype.end()) + 1)
    try:
        root = etree.fromstring(source, _safe_xml_parser())
    except etree.XMLSyntaxError as error:
        return _syntax_problem(name, text, error)
    if root.getroottree().docinfo.doctype:  # a backstop, should the prolog scan ever miss one
        return _doctype_problem(name, line=1)
    element_count = sum(1 for _ in root.iter(etree.Element))
    if element_count > MAX_ELEMENTS_PER_FILE:
        return Problem(
            name,
            f"The file has {element_count:,} XML elements; crmflow accepts up to "
            f"{MAX_ELEMENTS_PER_FILE:,} per file: split the process into several, joined by call activities.",
        )
    if not _is_definitions(root):
        return Problem(
            name,
            f"The file is XML but not BPMN or DMN: its root element is <{_local_name(root)}>, "
            "where bpmn:definitions or dmn:definitions was expected.",
            line=root.sourceline,
        )
    return _Document(name, root, _elements_by_id(root))


def _doctype_problem(name: str, line: int) -> Problem:
    return Problem(
        name,
        "The file contains a DOCTYPE declaration. crmflow refuses DOCTYPEs because they can "
        "define entities that read local files or expand without limit; BPMN and DMN files "
        "never need one, so remove it.",
        line=line,
    )


def _syntax_problem(name: str, text: str, error: etree.XMLSyntaxError) -> Problem:
    # lxml appends ", line L, column C" to its message; we give the position separately.
    message = re.sub(r",? line \d+, column \d+$", "", error.msg or "").strip().rstrip(".")
    line, column = error.position
    if _past_the_end(text, line, column):
        return Problem(
            name,
            "The file ends before its XML is complete; was it cut off while saving or "
            f"uploading? ({message})",
            line=line,
        )
    return Problem(name, f"The file is not well-formed XML (column {column}): {message}.", line=line)


def _past_the_end(text: str, line: int, column: int) -> bool:
    lines = text.rstrip().splitlines()
    return line > len(lines) or (line == len(lines) and column > len(lines[-1]))


def _is_definitions(root: etree._Element) -> bool:
    qname = etree.QName(root)
    return qname.localname == "definitions" and (
        qname.namespace == BPMN_MODEL_NS or bool(_DMN_NAMESPACE.match(qname.namespace or ""))
    )


def _elements_by_id(root: etree._Element) -> dict[str, etree._Element]:
    elements = {}
    for element in _model_elements(root):
        element_id = element.get("id")
        if element_id:
            elements.setdefault(element_id, element)
    return elements


def _model_elements(root: etree._Element) -> Iterator[etree._Element]:
    """The BPMN (or DMN) elements proper: the ids of extension elements such as Camunda's form
    fields or a vendor's metadata belong to other namespaces, and may repeat model ids."""
    return root.iter(f"{{{etree.QName(root).namespace}}}*")


def _bundle_size_problems(files: Mapping[str, bytes]) -> Iterator[Problem]:
    total = 0
    for name, source in files.items():
        total += len(source)
        if total > MAX_BUNDLE_BYTES:
            yield Problem(
                name,
                f"With this file the bundle exceeds {_megabytes(MAX_BUNDLE_BYTES)}: "
                "deploy fewer or smaller files at once.",
            )
            return


def _collect_files(paths: Iterable[str | Path]) -> tuple[dict[str, bytes], list[Problem]]:
    files, problems = {}, []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(file for file in path.rglob("*") if file.suffix in (".bpmn", ".dmn") and file.is_file())
            if not found:
                problems.append(Problem(str(given), "The folder contains no .bpmn or .dmn files."))
        elif path.exists():
            found = [path]
        else:
            problems.append(Problem(str(given), "There is no such file or folder."))
            continue
        for file in found:
            name = str(given) if file is path else str(file)
            try:
                with file.open("rb") as stream:
                    # One byte more than allowed is enough to report an oversized file.
                    files[name] = stream.read(MAX_FILE_BYTES + 1)
            except OSError as error:
                problems.append(Problem(name, f"The file cannot be read: {error.strerror}."))
    return files, problems


# --- Checks on whole documents and on the bundle --------------------------------------------


class _BundleIndex:
    """Where every process and decision of the bundle is, and which processes will run."""

    def __init__(self, documents: list[_Document]):
        self.documents = documents
        self.processes: dict[str, tuple[_Document, etree._Element]] = {}
        self.decisions: dict[str, tuple[_Document, etree._Element]] = {}
        for document in documents:
            if document.is_dmn:
                for decision in _decisions(document):
                    self.decisions.setdefault(decision.get("id"), (document, decision))
            else:
                for process in document.children("process"):
                    if process.get("id"):
                        self.processes.setdefault(process.get("id"), (document, process))
        self.executable = self._executable_keys()

    def _executable_keys(self) -> list[str]:
        keys: dict[str, None] = {}  # an ordered set
        for document in self.documents:
            if document.is_dmn:
                continue
            processes = [process for process in document.children("process") if process.get("id")]
            marked = [process for process in processes if process.get("isExecutable") == "true"]
            # Camunda examples often leave isExecutable out: in a file where no process is
            # marked, every process with a start event is meant to run.
            chosen = marked or [process for process in processes if _starts(process)]
            keys.update(dict.fromkeys(process.get("id") for process in chosen))
        # A process reached only through a call activity runs too.
        pending = list(keys)
        while pending:
            for called in _called_elements(self.processes[pending.pop()][1]):
                if called in self.processes and called not in keys:
                    keys[called] = None
                    pending.append(called)
        return list(keys)

    def document_of(self, element: etree._Element) -> _Document | None:
        root = element.getroottree().getroot()
        return next((document for document in self.documents if document.root is root), None)

    def document_named(self, name: str) -> _Document | None:
        return next((document for document in self.documents if document.file == name), None)

    def files_needed_by(self, key: str) -> set[str]:
        """The files a process needs: its own, and those of everything it calls or decides with."""
        files, pending, seen = set(), [key], set()
        while pending:
            current = pending.pop()
            if current in seen or current not in self.processes:
                continue
            seen.add(current)
            document, process = self.processes[current]
            files.add(document.file)
            files.update(
                self.decisions[ref][0].file for ref in _decision_refs(process) if ref in self.decisions
            )
            pending += _called_elements(process)
        return files


def _check_documents(index: _BundleIndex) -> Iterator[Problem]:
    for document in index.documents:
        yield from _schema_problems(document)
        yield from _duplicate_ids(document)
        if document.is_dmn:
            yield from _check_decisions(document)
        else:
            yield from _check_process_ids(document)
            yield from _check_data_stores(document)
    yield from _duplicate_keys(index)


def _schema_problems(document: _Document) -> Iterator[Problem]:
    # Schema violations are warnings: SpiffWorkflow reads elements by name, not by the schema's
    # order, so e.g. a misplaced documentation element from another modeler still runs, and
    # whatever would break a process at run time is reported as an error by the checks below.
    # Camunda's extension elements and attributes are allowed by the schema itself.
    validator = _validator_for(etree.QName(document.root).namespace)
    if validator is None:
        return
    # The validator renames elements while checking; it must not touch the tree we parse.
    checked = copy.deepcopy(document.root)
    validator.preprocess(checked)
    if validator.validator.validate(checked):
        return
    kind = "DMN" if document.is_dmn else "BPMN 2.0"
    errors = list(validator.validator.error_log)
    for error in errors[:MAX_SCHEMA_PROBLEMS_PER_FILE]:
        yield Problem(
            document.file,
            f"Does not follow the {kind} schema: {_shorten_namespaces(error.message)}",
            line=error.line,
            severity=WARNING,
        )
    if len(errors) > MAX_SCHEMA_PROBLEMS_PER_FILE:
        yield Problem(
            document.file,
            f"… and {len(errors) - MAX_SCHEMA_PROBLEMS_PER_FILE} more schema violations.",
            severity=WARNING,
        )


def _validator_for(namespace: str | None) -> BpmnValidator | None:
    # A new validator each time: lxml schemas keep their error log on the instance, so sharing
    # one between threads would mix up reports; loading the XSD takes a few milliseconds.
    if namespace == BPMN_MODEL_NS:
        return BpmnValidator()
    if namespace in DMN_SCHEMAS:
        try:
            return BpmnValidator(DMN_SCHEMAS[namespace])
        except etree.XMLSchemaParseError:
            # SpiffWorkflow 3.2's DMN 1.2 schema does not load (its DI import is broken).
            return None
    return None


def _duplicate_ids(document: _Document) -> Iterator[Problem]:
    for element in _model_elements(document.root):
        element_id = element.get("id")
        first = document.elements.get(element_id)
        if element_id and first is not element:
            yield _problem(
                document,
                element,
                f"The id '{element_id}' is already used by the {_local_name(first)} on line "
                f"{first.sourceline}: every element needs its own id.",
            )


def _check_decisions(document: _Document) -> Iterator[Problem]:
    decisions = _decisions(document)
    if not decisions:
        yield _problem(document, document.root, "The DMN file defines no decision.")
    elif len(decisions) > 1:
        names = ", ".join(f"'{decision.get('id')}'" for decision in decisions)
        yield _problem(
            document,
            decisions[1],
            f"The DMN file defines {len(decisions)} decisions ({names}); crmflow reads one "
            "decision table per DMN file: put each decision in a file of its own.",
        )
    for decision in decisions:
        if decision.find(f"{{{etree.QName(decision).namespace}}}decisionTable") is None:
            yield _problem(
                document,
                decision,
                "The decision is not a decision table; crmflow evaluates decision tables only.",
            )


def _check_process_ids(document: _Document) -> Iterator[Problem]:
    for process in document.children("process"):
        if not process.get("id"):
            yield _problem(document, process, "The process has no id: crmflow needs it as the process key.")


def _check_data_stores(document: _Document) -> Iterator[Problem]:
    for data_store in document.children("dataStore"):
        yield _problem(
            document,
            data_store,
            "Data stores are not supported by crmflow: keep the data in process variables, "
            "or read and write it from a service task.",
        )


def _duplicate_keys(index: _BundleIndex) -> Iterator[Problem]:
    for kind, defined, elements in (
        ("process", index.processes, _all_processes(index)),
        ("decision", index.decisions, _all_decisions(index)),
    ):
        for document, element in elements:
            first_document, first = defined[element.get("id")]
            if first is not element and first_document is not document:
                yield _problem(
                    document,
                    element,
                    f"The {kind} id '{element.get('id')}' is also defined in "
                    f"{first_document.file} (line {first.sourceline}): ids must be unique "
                    "across the files deployed together.",
                )


def _all_processes(index: _BundleIndex) -> Iterator[tuple[_Document, etree._Element]]:
    for document in index.documents:
        if not document.is_dmn:
            for process in document.children("process"):
                yield document, process


def _all_decisions(index: _BundleIndex) -> Iterator[tuple[_Document, etree._Element]]:
    for document in index.documents:
        if document.is_dmn:
            for decision in _decisions(document):
                yield document, decision


# --- Checks on the processes that will run --------------------------------------------------


def _check_processes(index: _BundleIndex) -> Iterator[Problem]:
    for key in index.executable:
        document, process = index.processes[key]
        for check in _PROCESS_CHECKS:
            yield from check(document, process, index)
    yield from _files_without_executable_process(index)


def _check_start_events(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    if not _starts(process):
        yield _problem(
            document,
            process,
            "The process has no start event, so it can never be started: add a start event.",
        )
    for subprocess in _descendants(process, *_SUBPROCESS_TAGS):
        count = len(subprocess.findall(_bpmn("startEvent")))
        if count != 1:
            yield _problem(
                document,
                subprocess,
                f"An embedded subprocess needs exactly one start event; this one has {count}.",
            )


def _check_sequence_flows(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for container in _containers(process):
        # A flow connects elements of the same process or subprocess: its siblings.
        siblings = {child.get("id") for child in container.iterchildren(etree.Element)}
        for flow in container.iterchildren(_bpmn("sequenceFlow")):
            for attribute, role in (("sourceRef", "starts at"), ("targetRef", "leads to")):
                ref = flow.get(attribute)
                if not ref:
                    yield _problem(
                        document, flow, f"The sequence flow has no {attribute}: reconnect it in the modeler."
                    )
                elif ref not in siblings:
                    yield _problem(
                        document,
                        flow,
                        f"The sequence flow {role} '{ref}', but there is no element with that id in the "
                        "same process or subprocess: reconnect or delete the flow in the modeler.",
                    )


def _check_business_rule_tasks(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for task in _descendants(process, "businessRuleTask"):
        ref = task.get(f"{{{CAMUNDA_NS}}}decisionRef")
        if not ref:
            yield _problem(
                document,
                task,
                "The business rule task names no decision: in Camunda Modeler set Implementation "
                "to DMN and Decision reference to the id of a decision in the bundle.",
            )
        elif ref not in index.decisions:
            yield _problem(
                document,
                task,
                f"The business rule task uses decision '{ref}', but no DMN file in the bundle "
                f"defines it{_known_ids(index.decisions)}: add the DMN file or fix the decision reference.",
            )


def _check_call_activities(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for call in _descendants(process, "callActivity"):
        called = call.get("calledElement")
        if not called:
            yield _problem(
                document,
                call,
                "The call activity names no process: set Called element to the id of a process in the bundle.",
            )
        elif called not in index.processes:
            yield _problem(
                document,
                call,
                f"The call activity calls process '{called}', but no file in the bundle defines "
                f"it{_known_ids(index.processes)}: add its BPMN file or fix the called element.",
            )


def _check_scripts(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for task in _descendants(process, "scriptTask"):
        script_format = task.get("scriptFormat")
        script = task.find(_bpmn("script"))
        resource = task.get(f"{{{CAMUNDA_NS}}}resource")
        if (script_format.lower() if script_format else None) not in _PYTHON_SCRIPT_FORMATS:
            yield _problem(
                document,
                task,
                f"The script is written in {script_format}; crmflow runs Python scripts only: "
                "set the script format to python and rewrite the script.",
            )
        elif script is None or not (script.text or "").strip():
            where = f" from the file '{resource}'" if resource else ""
            yield _problem(
                document,
                task,
                f"The script task has no inline script{where}: crmflow runs only scripts "
                "written into the task itself.",
            )
        else:
            yield from _script_problems(document, task, script)


def _script_problems(document: _Document, task: etree._Element, script: etree._Element) -> Iterator[Problem]:
    # Script line 1 is the line of the <script> tag, so line n is n - 1 lines further down.
    first_line = script.sourceline
    errors = _restricted_errors(compile_restricted_exec, script.text)
    for error in errors:
        script_line, message = _split_restricted_error(error)
        yield _problem(
            document,
            task,
            f"Line {script_line} of the script: {message}.",
            line=first_line + script_line - 1,
        )
    if errors:
        return
    for statement in ast.walk(ast.parse(script.text)):
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            yield _problem(
                document,
                task,
                f"Line {statement.lineno} of the script imports a module "
                f"({ast.unparse(statement)}): scripts run in a sandbox and cannot import modules.",
                line=first_line + statement.lineno - 1,
            )


def _check_conditions(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for flow in _descendants(process, "sequenceFlow"):
        condition = flow.find(_bpmn("conditionExpression"))
        if condition is None or not (condition.text or "").strip():
            continue
        language = condition.get("language")
        if (language or "").lower() not in _CONDITION_LANGUAGES:
            yield _problem(
                document,
                flow,
                f"The condition is written in {language}; crmflow evaluates ${{...}} expressions "
                "and Python expressions only.",
                line=condition.sourceline,
            )
            continue
        error = _expression_error(condition.text)
        if error:
            yield _problem(
                document,
                flow,
                f"The condition {condition.text.strip()!r} is not a valid expression: {error}.",
                line=condition.sourceline,
            )


def _check_timers(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for definition in _descendants(process, "timerEventDefinition"):
        event = definition.getparent()
        # In SpiffWorkflow's order of precedence.
        times = [time for tag in ("timeDate", "timeDuration", "timeCycle") for time in definition.findall(_bpmn(tag))]
        text = (times[0].text or "").strip() if times else ""
        if not text:
            yield _problem(
                document,
                event,
                "The timer has no time: set a date, a duration or a cycle, e.g. PT2H or R3/P1D.",
            )
        elif is_wrapped(text):
            # ${followUpDate} is only known at run time, but it must at least be an expression.
            error = _expression_error(text)
            if error:
                yield _problem(
                    document,
                    event,
                    f"The timer expression {text!r} is not a valid expression: {error}.",
                    line=times[0].sourceline,
                )
        elif not iso8601_literal(text):
            cron = " Cron expressions are not supported." if len(text.split()) >= 5 else ""
            yield _problem(
                document,
                event,
                f"The timer {text!r} is not an ISO 8601 date, duration or cycle "
                f"(such as 2026-12-01T09:00:00Z, PT2H, P2D or R3/P1D).{cron} "
                "For a time computed by the process, write ${variable}.",
                line=times[0].sourceline,
            )


# Elements SpiffWorkflow cannot run, or silently runs as something else.
_UNSUPPORTED = {
    "complexGateway": "Complex gateways are not supported by crmflow: use an inclusive or "
    "exclusive gateway with conditions.",
    "adHocSubProcess": "Ad-hoc subprocesses are not supported by crmflow: model the steps with "
    "gateways, or as separate user tasks.",
    "compensateEventDefinition": "Compensation events are not supported by crmflow: model the "
    "steps that undo the work explicitly.",
    "linkEventDefinition": "Link events are not supported by crmflow: connect the two parts of "
    "the diagram with a sequence flow.",
}


def _check_unsupported(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for element in _descendants(process, *_UNSUPPORTED):
        kind = _local_name(element)
        # An event definition is part of its event, and the designer knows the event.
        subject = element.getparent() if kind.endswith("EventDefinition") else element
        yield _problem(document, subject, _UNSUPPORTED[kind], line=element.sourceline)


def _check_data_associations(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for container in _containers(process):
        # SpiffWorkflow looks for a task's data objects in its own (sub)process and the one
        # directly around it, and loops forever when they are in neither: refuse such files.
        visible = _data_object_ids(container)
        if container is not process:
            visible |= _data_object_ids(container.getparent())
        for association in container.iterfind(f"*/{_bpmn('dataInputAssociation')}"):
            yield from _data_reference_problems(document, association, "sourceRef", visible)
        for association in container.iterfind(f"*/{_bpmn('dataOutputAssociation')}"):
            yield from _data_reference_problems(document, association, "targetRef", visible)


def _data_reference_problems(
    document: _Document, association: etree._Element, end: str, visible: set[str]
) -> Iterator[Problem]:
    task = association.getparent()
    for ref in association.iterchildren(_bpmn(end)):
        message = _data_reference_problem(document, (ref.text or "").strip(), end == "sourceRef", visible)
        if message:
            yield _problem(document, task, message, line=ref.sourceline)


def _data_reference_problem(document: _Document, ref_id: str, reads: bool, visible: set[str]) -> str | None:
    target = document.elements.get(ref_id)
    kind = _local_name(target) if target is not None else None
    uses = "Reads" if reads else "Writes"
    if kind == "dataStoreReference":
        return (
            f"{uses} the data store '{_display_name(target) or ref_id}', but data stores are not "
            "supported by crmflow: use process variables instead."
        )
    if kind != "dataObjectReference":
        return (
            f"{uses} '{ref_id}', which is not a data object reference: connect the data "
            "association to a data object in the modeler."
        )
    if target.get("dataObjectRef") not in visible:
        return (
            f"{uses} the data object '{target.get('dataObjectRef')}', which is defined neither in "
            "this process or subprocess nor in the one directly around it: move the data object "
            "there in the modeler."
        )
    return None


# What an event definition (or a send/receive task) points to, and what it must point to.
_EVENT_REFERENCES = {
    "messageEventDefinition": ("messageRef", "message"),
    "signalEventDefinition": ("signalRef", "signal"),
    "errorEventDefinition": ("errorRef", "error"),
    "escalationEventDefinition": ("escalationRef", "escalation"),
    "sendTask": ("messageRef", "message"),
    "receiveTask": ("messageRef", "message"),
}


def _check_event_references(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    for element in _descendants(process, *_EVENT_REFERENCES):
        attribute, kind = _EVENT_REFERENCES[_local_name(element)]
        ref = element.get(attribute)
        target = document.elements.get(ref) if ref else None
        if ref and (target is None or _local_name(target) != kind):
            subject = element.getparent() if _local_name(element).endswith("EventDefinition") else element
            yield _problem(
                document,
                subject,
                f"Refers to the {kind} '{ref}', which this file does not define: choose one of the "
                f"file's {kind}s in the modeler, or create it.",
                line=element.sourceline,
            )


def _warn_unowned_user_tasks(
    document: _Document, process: etree._Element, index: _BundleIndex
) -> Iterator[Problem]:
    in_named_lane = {
        (ref.text or "").strip()
        for lane in document.root.iter(_bpmn("lane"))
        if lane.get("name")
        for ref in lane.findall(_bpmn("flowNodeRef"))
    }
    owners = ("assignee", "candidateUsers", "candidateGroups")
    for task in _descendants(process, "userTask"):
        has_owner = any((task.get(f"{{{CAMUNDA_NS}}}{owner}") or "").strip() for owner in owners)
        if not has_owner and task.get("id") not in in_named_lane:
            yield _problem(
                document,
                task,
                "Nobody would own this work item: set an assignee, candidate users or candidate "
                "groups, or put the task in a named lane.",
                severity=WARNING,
            )


_PROCESS_CHECKS = (
    _check_start_events,
    _check_sequence_flows,
    _check_business_rule_tasks,
    _check_call_activities,
    _check_scripts,
    _check_conditions,
    _check_timers,
    _check_unsupported,
    _check_data_associations,
    _check_event_references,
    _warn_unowned_user_tasks,
)


def _files_without_executable_process(index: _BundleIndex) -> Iterator[Problem]:
    running = {index.processes[key][0].file for key in index.executable}
    for document in index.documents:
        if not document.is_dmn and document.children("process") and document.file not in running:
            yield Problem(
                document.file,
                "No process in this file can be started: none is marked executable and none "
                "has a start event.",
                severity=WARNING,
            )


def _expression_error(text: str) -> str | None:
    errors = _restricted_errors(compile_restricted_eval, camunda_to_python(text))
    return _split_restricted_error(errors[0])[1] if errors else None


def _restricted_errors(compile_restricted: Callable, source: str) -> list[str]:
    """RestrictedPython's complaints about the source, each "Line n: message"."""
    try:
        return list(compile_restricted(source, filename="<bpmn>").errors)
    except RecursionError:  # Python's own parser gives up on very deeply nested code
        return ["Line 1: it is nested too deeply for Python to compile"]


def _split_restricted_error(error: str) -> tuple[int, str]:
    """RestrictedPython reports "Line 3: SyntaxError: invalid syntax at statement: 'if x'"."""
    match = re.match(r"Line (\d+): (?:SyntaxError: )?(.*)", error, re.DOTALL)
    if not match:
        return 1, error
    return int(match.group(1)), match.group(2).strip().rstrip(".")


# --- SpiffWorkflow's turn -------------------------------------------------------------------


def _spiff_parser(
    documents: list[_Document], index: _BundleIndex
) -> tuple[CrmParser, set[str], list[Problem]]:
    """Hand the already parsed (and checked) trees to SpiffWorkflow, so it never reads the text."""
    parser, added, problems = CrmParser(), set(), []
    for document in documents:
        try:
            if document.is_dmn:
                parser.add_dmn_xml(document.root, document.file)
                parser.dmn_parsers[_decisions(document)[0].get("id")].parse()
            else:
                parser.add_bpmn_xml(document.root.getroottree(), document.file)
        except Exception as error:  # SpiffWorkflow lets KeyError & co. escape from bad files
            problems.append(_explain_failure(error, index, document))
        else:
            added.add(document.file)
    for key in index.executable:
        if index.processes[key][0].file in added:
            # Our rule for what runs, not only isExecutable="true", decides.
            parser.process_parsers[key].process_executable = True
    return parser, added, problems


def _parse_processes(
    parser: CrmParser, added: set[str], index: _BundleIndex
) -> tuple[dict[str, ProcessModel], list[Problem]]:
    processes, problems = {}, []
    for key in index.executable:
        if not index.files_needed_by(key) <= added:
            continue
        document, process = index.processes[key]
        try:
            spec = parser.get_spec(key)
            subprocess_specs = parser.get_subprocess_specs(key)
        except Exception as error:  # any failure inside SpiffWorkflow becomes a Problem
            problems.append(_explain_failure(error, index, document))
        else:
            processes[key] = ProcessModel(key, process.get("name"), spec, subprocess_specs)
    return processes, problems


# SpiffWorkflow messages that do not tell a designer what to do.
_FRIENDLIER = {
    "Non-default exclusive outgoing sequence flow without condition": (
        "The sequence flow leaves a gateway without a condition and is not the gateway's default "
        "flow: add a condition or make it the default flow."
    ),
    "Multiple outgoing flows are not supported for tasks of type": (
        "The element has several outgoing sequence flows, but crmflow does not split the flow "
        "implicitly: add a parallel gateway after it (or an exclusive gateway with conditions)."
    ),
    "There is no support implemented for this task type": "The element is not supported by crmflow.",
    "A SubWorkflow Must contain an End event": "An embedded subprocess needs at least one end event.",
}


def _explain_failure(error: Exception, index: _BundleIndex, fallback: _Document) -> Problem:
    if isinstance(error, ValidationException):
        document = index.document_named(error.file_name) or fallback
        element = document.elements.get(error.id) if error.id else None
        message = _validation_message(error)
        if element is None:
            element_type = _short_tag(error.tag) or None
            return Problem(document.file, message, element_id=error.id or None, element_type=element_type)
        return _problem(document, element, message)
    element = _node_being_parsed(error)
    document = (index.document_of(element) if element is not None else None) or fallback
    message = f"crmflow could not read this element: {_describe_internal_error(error)}."
    if element is None:
        return Problem(document.file, message)
    return _problem(document, element, message)


def _validation_message(error: ValidationException) -> str:
    text = str(error.args[0]) if error.args else ""
    cause = error.__context__
    # TaskParser wraps any exception as ValidationException(repr(exception)).
    if cause is not None and text == repr(cause):
        return f"crmflow could not read this element: {_describe_internal_error(cause)}."
    for prefix, friendly in _FRIENDLIER.items():
        if text.startswith(prefix):
            return friendly
    return re.sub(r"\.{2,}", ".", " ".join(text.split()))


def _describe_internal_error(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return f"the required attribute or reference {_short_tag(str(error.args[0]))} is missing"
    if isinstance(error, NotImplementedError):
        return "it uses a form of this element that crmflow does not support"
    if isinstance(error, RecursionError):
        return "the chain of steps that follows it is too long; split the process with call activities"
    detail = " ".join(str(error).split())
    return f"it has an unexpected form ({detail})" if detail else "it has an unexpected form"


def _node_being_parsed(error: BaseException) -> etree._Element | None:
    """SpiffWorkflow's parsers let raw exceptions escape without saying where they were; the
    innermost parser frame on the traceback still holds the XML element it was reading."""
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        for candidate in (frame.f_locals.get("node"), getattr(frame.f_locals.get("self"), "node", None)):
            if isinstance(candidate, etree._Element) and candidate.get("id"):
                return candidate
    return None


# --- Small helpers --------------------------------------------------------------------------


def _problem(
    document: _Document,
    element: etree._Element,
    message: str,
    line: int | None = None,
    severity: str = ERROR,
) -> Problem:
    return Problem(
        file=document.file,
        message=message,
        line=line or element.sourceline,
        element_id=element.get("id"),
        element_name=_display_name(element),
        severity=severity,
        element_type=_local_name(element),
    )


def _display_name(element: etree._Element) -> str | None:
    """The element's name on one line: modelers store the diagram's line breaks in it."""
    name = " ".join((element.get("name") or "").split())
    return name or None


def _has_error(problems: list[Problem], file: str) -> bool:
    return any(problem.file == file and problem.severity == ERROR for problem in problems)


def _in_file_order(problems: list[Problem], files: Mapping[str, bytes]) -> list[Problem]:
    order = {name: position for position, name in enumerate(files)}
    unique = dict.fromkeys(problems)  # a subprocess failure may be reported by each caller
    return sorted(unique, key=lambda problem: (order.get(problem.file, len(order)), problem.line or 0))


def _bpmn(path: str) -> str:
    return f"{{{BPMN_MODEL_NS}}}{path}"


def _descendants(element: etree._Element, *tags: str) -> Iterator[etree._Element]:
    return element.iter(*(_bpmn(tag) for tag in tags))


def _containers(process: etree._Element) -> list[etree._Element]:
    """The process and every subprocess in it: the scopes that hold flow elements."""
    return [process, *_descendants(process, *_SUBPROCESS_TAGS, "adHocSubProcess")]


def _data_object_ids(container: etree._Element) -> set[str]:
    return {data.get("id") for data in container.iterchildren(_bpmn("dataObject"))}


def _starts(process: etree._Element) -> bool:
    return process.find(_bpmn("startEvent")) is not None


def _called_elements(process: etree._Element) -> list[str]:
    called = (call.get("calledElement") for call in _descendants(process, "callActivity"))
    return [element for element in called if element]


def _decision_refs(process: etree._Element) -> list[str]:
    refs = (task.get(f"{{{CAMUNDA_NS}}}decisionRef") for task in _descendants(process, "businessRuleTask"))
    return [ref for ref in refs if ref]


def _decisions(document: _Document) -> list[etree._Element]:
    return document.root.findall(f"{{{etree.QName(document.root).namespace}}}decision")


def _known_ids(ids: Mapping[str, object]) -> str:
    if not ids:
        return ""
    shown = ", ".join(f"'{key}'" for key in list(ids)[:5])
    return f" (the bundle has {shown}{', …' if len(ids) > 5 else ''})"


def _local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def _short_tag(tag: str) -> str:
    """'{http://camunda.org/schema/1.0/bpmn}decisionRef' -> 'camunda:decisionRef'; BPMN tags
    lose their prefix altogether, as designers know them: 'bpmn:scriptTask' -> 'scriptTask'."""
    return _shorten_namespaces(tag).removeprefix("bpmn:")


def _shorten_namespaces(text: str) -> str:
    def prefixed(match: re.Match) -> str:
        prefix = _PREFIXES.get(match.group(1))
        return f"{prefix}:" if prefix else match.group(0)

    return re.sub(r"\{([^}]*)\}", prefixed, text)


def _line_and_column(source: bytes, offset: int) -> tuple[int, int]:
    line_start = source.rfind(b"\n", 0, offset) + 1
    return source.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
