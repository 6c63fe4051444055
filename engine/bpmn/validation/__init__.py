"""Load BPMN and DMN files safely, and explain every problem in words a process designer can act on.

The package by job: ``documents`` reads the files safely and indexes them, ``checks``
holds the checks of documents and processes, ``constructs`` those against the list of what
crmflow runs (engine/bpmn/support.py), ``flow`` those of how a process hangs together,
``syntax`` whether scripts and expressions compile, ``spiff`` has SpiffWorkflow build the
specs and explains what it refuses, ``problems`` is what is reported.

A *bundle* is the set of files deployed together: call activities and business-rule tasks may
refer to processes and decisions in any file of it. ``load_bundle`` reads the files with a
hardened XML parser, checks them against the BPMN/DMN schemas and against what crmflow can run,
and only then lets SpiffWorkflow build the process specs. It gathers every problem it can find
before giving up, each naming the file, the line and the element, never a Python traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


from engine.bpmn.validation.checks import check_documents, check_processes
from engine.bpmn.validation.documents import (
    MAX_ELEMENTS_PER_FILE,
    MAX_FILE_BYTES,
    BundleIndex,
    bundle_size_problems,
    collect_files,
    read_document,
)
from engine.bpmn.validation.problems import ERROR, WARNING, BpmnValidationError, Problem, has_error, in_file_order
from engine.bpmn.validation.spiff import ProcessModel, parse_processes, spiff_parser

__all__ = ["ERROR", "MAX_ELEMENTS_PER_FILE", "MAX_FILE_BYTES", "WARNING", "BpmnValidationError", "Bundle", "Problem",
           "ProcessModel", "load_bundle", "validate_paths"]


@dataclass
class Bundle:
    files: dict[str, bytes]
    processes: dict[str, ProcessModel]
    warnings: list[Problem] = field(default_factory=list)
    index: BundleIndex | None = None

    def files_needed_by(self, key: str) -> set[str]:
        """The files that load ``key`` again as it was loaded here: its own, those it calls and
        decides with, and, because each file's processes are checked together, those that the
        other deployable processes of these files need."""
        files, pending = set(), [key]
        while pending:
            needed = self.index.files_needed_by(pending.pop()) - files
            files |= needed
            pending += [other for other in self.index.deployable if self.index.processes[other][0].file in needed]
        return files


def load_bundle(files: Mapping[str, bytes], deploy: Iterable[str] | None = None) -> Bundle:
    """Parse BPMN and DMN files together; raise ``BpmnValidationError`` listing every problem.
    ``deploy``: the process keys to build (default: the bundle's executable processes),
    for a version deployed under rules that have changed since."""
    problems = list(bundle_size_problems(files))
    documents = []
    for name, source in files.items():
        document = read_document(name, source)
        if isinstance(document, Problem):
            problems.append(document)
        else:
            documents.append(document)

    index = BundleIndex(documents, deploy)
    problems += check_documents(index)
    problems += check_processes(index)

    # SpiffWorkflow stops at the first problem it meets and mostly rediscovers ours, phrased
    # worse; so it only sees the files we found nothing wrong with.
    clean = [document for document in documents if not has_error(problems, document.file)]
    parser, added, spiff_problems = spiff_parser(clean, index)
    processes, parse_problems = parse_processes(parser, added, index)
    problems = in_file_order(spiff_problems + parse_problems + problems, files)

    if any(problem.severity == ERROR for problem in problems):
        raise BpmnValidationError(problems)
    return Bundle(files=dict(files), processes=processes, warnings=problems, index=index)


def validate_paths(paths: Iterable[str | Path]) -> list[Problem]:
    """Check BPMN and DMN files, and directories of them, as one bundle; report, never raise."""
    files, problems = collect_files(paths)
    if not files:
        return problems
    try:
        bundle = load_bundle(files)
    except BpmnValidationError as error:
        return problems + error.problems
    return problems + bundle.warnings
