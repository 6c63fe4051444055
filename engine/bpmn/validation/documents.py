"""Reading BPMN and DMN files safely (a hardened XML parser, size limits), and the index of
a bundle's documents, processes and decisions that the checks look things up in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS

from engine.bpmn.parser import CAMUNDA_NS
from engine.bpmn.validation.problems import ERROR, Problem, display_name, line_and_column, megabytes, shorten_namespaces

MAX_FILE_BYTES = 10 * 1024 * 1024


MAX_BUNDLE_BYTES = 20 * 1024 * 1024


# The largest real diagram we know has 2,400 elements. SpiffWorkflow indexes a process in a
# time that grows with the square of its size: 10,000 elements of the worst kind take a second.
MAX_ELEMENTS_PER_FILE = 10_000


_DMN_NAMESPACE = re.compile(r"^https?://www\.omg\.org/spec/DMN/")


# A DOCTYPE may only appear in the prolog: before it, just the XML declaration, comments,
# processing instructions and white space. The atomic group and possessive star keep the
# scan linear: plain (...)* backtracks exponentially on a prolog of many <?...?>.
_DOCTYPE_IN_PROLOG = re.compile(r"\ufeff?(?>\s+|<\?.*?\?>|<!--.*?-->)*+<!DOCTYPE", re.DOTALL)


SUBPROCESS_TAGS = ("subProcess", "transaction")


@dataclass
class Document:
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


def read_document(name: str, source: bytes) -> Document | Problem:
    if len(source) > MAX_FILE_BYTES:
        return Problem(
            name,
            f"The file is {megabytes(len(source))}; crmflow accepts BPMN and DMN files "
            f"of up to {megabytes(MAX_FILE_BYTES)}.",
        )
    if not source.strip():
        return Problem(name, "The file is empty.")
    if b"\0" in source:
        return Problem(name, "The file is binary data, not a BPMN or DMN (XML) file.")
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = line_and_column(source, error.start)
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
            f"The file is XML but not BPMN or DMN: its root element is <{local_name(root)}>, "
            "where bpmn:definitions or dmn:definitions was expected.",
            line=root.sourceline,
        )
    return Document(name, root, _elements_by_id(root))


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
    for element in model_elements(root):
        element_id = element.get("id")
        if element_id:
            elements.setdefault(element_id, element)
    return elements


def model_elements(root: etree._Element) -> Iterator[etree._Element]:
    """The BPMN (or DMN) elements proper: extension elements such as Camunda's form fields or a
    vendor's metadata, whatever namespace they are written in, may repeat model ids."""
    namespace = etree.QName(root).namespace
    extensions = f"{{{namespace}}}extensionElements"
    pending = [root]
    while pending:
        element = pending.pop()
        yield element
        if element.tag != extensions:
            pending.extend(reversed([child for child in element.iterchildren(f"{{{namespace}}}*")]))


def bundle_size_problems(files: Mapping[str, bytes]) -> Iterator[Problem]:
    total = 0
    for name, source in files.items():
        total += len(source)
        if total > MAX_BUNDLE_BYTES:
            yield Problem(
                name,
                f"With this file the bundle exceeds {megabytes(MAX_BUNDLE_BYTES)}: "
                "deploy fewer or smaller files at once.",
            )
            return


def collect_files(paths: Iterable[str | Path]) -> tuple[dict[str, bytes], list[Problem]]:
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


class BundleIndex:
    """Where every process and decision of the bundle is, and which processes will run."""

    def __init__(self, documents: list[Document], deploy: Iterable[str] | None = None):
        self.documents = documents
        self.processes: dict[str, tuple[Document, etree._Element]] = {}
        self.decisions: dict[str, tuple[Document, etree._Element]] = {}
        for document in documents:
            if document.is_dmn:
                for decision in decisions_of(document):
                    self.decisions.setdefault(decision.get("id"), (document, decision))
            else:
                for process in document.children("process"):
                    if process.get("id"):
                        self.processes.setdefault(process.get("id"), (document, process))
        if deploy is None:
            self.deployable = self._deployable_keys()
        else:
            self.deployable = [key for key in deploy if key in self.processes]
        self.runnable = self._runnable_keys()

    def _deployable_keys(self) -> list[str]:
        """The processes deployed to be started: marked isExecutable="true", or, in a file where no
        process says either way, every process with a start event (Camunda examples often leave
        the attribute out). isExecutable="false" is honoured."""
        keys: dict[str, None] = {}  # an ordered set
        for document in self.documents:
            if document.is_dmn:
                continue
            processes = [process for process in document.children("process") if process.get("id")]
            marked = [process for process in processes if process.get("isExecutable") == "true"]
            unmarked = not any(process.get("isExecutable") for process in processes)
            chosen = marked or ([process for process in processes if has_start_event(process)] if unmarked else [])
            keys.update(dict.fromkeys(process.get("id") for process in chosen))
        return list(keys)

    def _runnable_keys(self) -> list[str]:
        """The deployable processes and those they call, whatever their isExecutable: all that may run."""
        keys = dict.fromkeys(self.deployable)
        pending = list(keys)
        while pending:
            for called in called_elements(self.processes[pending.pop()][1]):
                if called in self.processes and called not in keys:
                    keys[called] = None
                    pending.append(called)
        return list(keys)

    def document_of(self, element: etree._Element) -> Document | None:
        root = element.getroottree().getroot()
        return next((document for document in self.documents if document.root is root), None)

    def document_named(self, name: str) -> Document | None:
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
            pending += called_elements(process)
        return files


def all_processes(index: BundleIndex) -> Iterator[tuple[Document, etree._Element]]:
    for document in index.documents:
        if not document.is_dmn:
            for process in document.children("process"):
                yield document, process


def all_decisions(index: BundleIndex) -> Iterator[tuple[Document, etree._Element]]:
    for document in index.documents:
        if document.is_dmn:
            for decision in decisions_of(document):
                yield document, decision


def bpmn_tag(path: str) -> str:
    return f"{{{BPMN_MODEL_NS}}}{path}"


def descendants(element: etree._Element, *tags: str) -> Iterator[etree._Element]:
    return element.iter(*(bpmn_tag(tag) for tag in tags))


def scopes_of(process: etree._Element) -> list[etree._Element]:
    """The process and every subprocess in it: the scopes that hold flow elements."""
    return [process, *descendants(process, *SUBPROCESS_TAGS, "adHocSubProcess")]


def data_object_ids(container: etree._Element) -> set[str]:
    return {data.get("id") for data in container.iterchildren(bpmn_tag("dataObject"))}


def has_start_event(process: etree._Element) -> bool:
    return process.find(bpmn_tag("startEvent")) is not None


def called_elements(process: etree._Element) -> list[str]:
    called = (call.get("calledElement") for call in descendants(process, "callActivity"))
    return [element for element in called if element]


def _decision_refs(process: etree._Element) -> list[str]:
    refs = (task.get(f"{{{CAMUNDA_NS}}}decisionRef") for task in descendants(process, "businessRuleTask"))
    return [ref for ref in refs if ref]


def decisions_of(document: Document) -> list[etree._Element]:
    return document.root.findall(f"{{{etree.QName(document.root).namespace}}}decision")


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def short_tag(tag: str) -> str:
    """'{http://camunda.org/schema/1.0/bpmn}decisionRef' -> 'camunda:decisionRef'; BPMN tags
    lose their prefix altogether, as designers know them: 'bpmn:scriptTask' -> 'scriptTask'."""
    return shorten_namespaces(tag).removeprefix("bpmn:")


def problem_at(
    document: Document,
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
        element_name=display_name(element),
        severity=severity,
        element_type=local_name(element),
    )
