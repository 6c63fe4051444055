"""Deployed process definitions: the files a process needs, its versions, and its parsed
spec, parsed once per version and kept in memory (a version never changes)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.bpmn.validation import Bundle, load_bundle
from engine.errors import NotFound
from engine.models import ProcessDefinition
from engine.runtime import statements as sql
from engine.texts import _

BPMN_SUFFIXES = (".bpmn", ".dmn")


def read_bpmn_files(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """File name -> content for the given files and the .bpmn/.dmn files in directories."""
    files: dict[str, bytes] = {}
    for path in map(Path, paths):
        candidates = sorted(p for p in path.rglob("*") if p.suffix in BPMN_SUFFIXES) if path.is_dir() else [path]
        for candidate in candidates:
            if not candidate.is_file():
                raise NotFound(_("%(path)s: no such file", path=str(candidate)), code="file_not_found")
            if candidate.name in files:
                raise ValueError(f"{candidate}: two files are called {candidate.name}; names must be unique")
            files[candidate.name] = candidate.read_bytes()
    return files


def process_sources(bundle: Bundle, model) -> dict[str, str]:
    """The files one process needs to load again as it was deployed: its own, those of the
    processes it calls, those the other processes of these files call, and the decision
    tables if it has business-rule tasks."""
    specs = [model.spec, *model.subprocess_specs.values()]
    names = {spec.file for spec in specs} | bundle.files_needed_by(model.key)
    if any(isinstance(ts, BusinessRuleTask) for spec in specs for ts in spec.task_specs.values()):
        names.update(name for name in bundle.files if name.endswith(".dmn"))
    return {name: bundle.files[name].decode("utf-8") for name in sorted(names)}


def content_hash(sources: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode("utf-8")).hexdigest()


def latest_definition(session: Session, key: str) -> ProcessDefinition | None:
    return session.scalar(
        select(ProcessDefinition).where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc()).limit(1)
    )


def find_task_spec(spec, subprocess_specs, bpmn_id: str):
    """The spec of the task a work item's ``task_spec`` names. For a multi-instance task
    that is the spec of one instance (with the form and properties), not the wrapper."""
    for candidate in [spec, *subprocess_specs.values()]:
        if bpmn_id in candidate.task_specs:
            task_spec = candidate.task_specs[bpmn_id]
            if isinstance(task_spec, MultiInstanceTask):
                task_spec = candidate.task_specs[task_spec.task_spec]
            return task_spec
    raise NotFound(_("The process has no task '%(task)s'.", task=bpmn_id), code="task_not_found")


class Specs:
    """The parsed spec of each deployed version this process has used, parsed once."""

    def __init__(self) -> None:
        self._parsed: dict[int, tuple[Any, dict]] = {}
        self._lock = threading.Lock()

    def of(self, definition_id: int, key: str, session: Session) -> tuple[Any, dict]:
        """(process spec, subprocess specs) of the version ``definition_id`` of process ``key``."""
        parsed = self._parsed.get(definition_id)
        if parsed is None:
            sources = session.scalar(sql.DEFINITION_SOURCES, {"definition_id": definition_id})
            with self._lock:
                parsed = self._parsed.get(definition_id)
                if parsed is None:
                    files = {name: text.encode("utf-8") for name, text in sources.items()}
                    model = load_bundle(files, deploy=[key]).processes[key]
                    parsed = self._parsed[definition_id] = (model.spec, model.subprocess_specs)
        return parsed
