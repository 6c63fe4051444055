"""Designers: process definitions and their versions, uploading and deploying BPMN, and
the in-browser modeler (bpmn-js)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from collections import defaultdict
from pathlib import Path

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import current_user
from flask_wtf.file import FileRequired, MultipleFileField
from werkzeug.utils import secure_filename
from wtforms import HiddenField, StringField, ValidationError

from engine.bpmn.validation import BpmnValidationError
from webui import readmodel
from webui.access import engine, role_required
from webui.diagrams import process_file
from webui.fields import WebForm, required
from webui.readmodel import InstanceStatus

bp = Blueprint("designer", __name__, url_prefix="/processes")
SUFFIXES = (".bpmn", ".dmn")
MAX_FILES = 20


@bp.route("/")
@role_required("designer")
def index():
    with engine().reading() as session:
        counts = readmodel.instance_counts(session)
    processes: dict[str, list[readmodel.ProcessDefinition]] = defaultdict(list)
    for definition in engine().definitions():
        processes[definition.key].append(definition)
    for versions in processes.values():
        versions.sort(key=lambda d: d.version, reverse=True)
    return render_template("processes.html", processes=sorted(processes.items()), counts=counts,
                           running=InstanceStatus.RUNNING)


def _definition(key: str, version: int) -> readmodel.ProcessDefinition:
    with engine().reading() as session:
        definition = readmodel.definition_version(session, key, version)
    if definition is None:
        abort(404)
    return definition


@bp.route("/<key>/v<int:version>")
@role_required("designer")
def definition(key: str, version: int):
    definition = _definition(key, version)
    with engine().reading() as session:
        counts = readmodel.instance_counts(session).get(definition.id, {})
        recent = readmodel.recent_instances(session, definition.id, 20)
    file_name, xml = process_file(definition)
    versions = sorted((d.version for d in engine().definitions(key)), reverse=True)
    return render_template("definition.html", definition=definition, counts=counts, recent=recent, xml=xml,
                           file_name=file_name, versions=versions)


@bp.route("/<key>/v<int:version>/bpmn")
@role_required("designer")
def download(key: str, version: int):
    file_name, xml = process_file(_definition(key, version))
    return Response(xml, mimetype="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{secure_filename(file_name)}"'})


def _validate_and_maybe_deploy(files: dict[str, bytes], deploy: bool):
    """Problems of the files (errors and warnings) and, when asked and error-free, what
    was deployed. The files go through a private temporary folder because the engine
    reads BPMN from paths."""
    with tempfile.TemporaryDirectory(prefix="crmflow-upload-") as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        problems = _named_as_uploaded(engine().validate([folder]), folder)
        errors = [p for p in problems if p.severity == "error"]
        if errors or not deploy:
            return problems, []
        try:
            return problems, engine().deploy([folder], deployed_by=current_user.username)
        except BpmnValidationError as refused:
            return _named_as_uploaded(refused.problems, folder), []


def _named_as_uploaded(problems, folder: str) -> list:
    """Problems name the uploaded file, not the temporary folder it was checked in."""
    prefix = str(Path(folder)) + "/"
    return [replace(p, file=p.file.removeprefix(prefix)) for p in problems]


class UploadForm(WebForm):
    """BPMN and DMN files to check, and to deploy when ``action`` is ``deploy``."""

    files = MultipleFileField(lazy_gettext("BPMN and DMN files (a process and the files it calls)"),
                              [FileRequired(lazy_gettext("Choose at least one .bpmn file."))])
    action = HiddenField()

    def validate_files(self, field) -> None:
        names = [secure_filename(upload.filename) for upload in field.data]
        if len(names) > MAX_FILES:
            raise ValidationError(ngettext("Upload at most %(num)d file at once.",
                                           "Upload at most %(num)d files at once.", MAX_FILES))
        for upload, name in zip(field.data, names):
            if not name.endswith(SUFFIXES):
                raise ValidationError(_("%(name)s: only .bpmn and .dmn files can be deployed.", name=upload.filename))
        for name in {name for name in names if names.count(name) > 1}:
            raise ValidationError(_("%(name)s: two files have this name.", name=name))


@bp.route("/upload", methods=["GET", "POST"])
@role_required("designer")
def upload():
    form = UploadForm()
    if not form.is_submitted():
        return render_template("upload.html", form=form, problems=None, files={})
    if not form.validate():
        return render_template("upload.html", form=form, problems=None, files={}), 400
    files = {secure_filename(upload.filename): upload.read() for upload in form.files.data}
    deploy = form.action.data == "deploy"
    problems, results = _validate_and_maybe_deploy(files, deploy)
    if results:
        created = [r for r in results if r.created]
        for result in results:
            if result.created:
                flash(_("Deployed %(key)s version %(version)d.", key=result.key, version=result.version), "success")
            else:
                flash(_("%(key)s is unchanged: version %(version)d already has this content.", key=result.key,
                        version=result.version), "info")
        first = (created or results)[0]
        return redirect(url_for("designer.definition", key=first.key, version=first.version))
    errors = [p for p in problems if p.severity == "error"]
    if deploy and not errors:
        flash(_("The files contain no executable process to deploy."), "error")
    texts = {name: content.decode("utf-8", "replace") for name, content in files.items() if name.endswith(".bpmn")}
    status = 422 if errors else 200
    return render_template("upload.html", form=form, problems=problems, files=texts, errors=errors), status


@bp.route("/<key>/v<int:version>/modeler")
@role_required("designer")
def modeler(key: str, version: int):
    definition = _definition(key, version)
    file_name, xml = process_file(definition)
    return render_template("modeler.html", definition=definition, xml=xml, file_name=file_name)


class ModelForm(WebForm):
    """The modeler's diagram, posted by its script (with the CSRF token in a header)."""

    xml = StringField(validators=[required()])


@bp.route("/<key>/v<int:version>/modeler", methods=["POST"])
@role_required("designer")
def save_model(key: str, version: int):
    """Validate the edited diagram and deploy it as the next version. The other files the
    version needs (called processes, decision tables) are deployed with it unchanged."""
    definition = _definition(key, version)
    file_name, _original = process_file(definition)
    form = ModelForm()
    if not form.validate():
        return jsonify(ok=False, problems=[{"message": _("The diagram is empty.")}]), 400
    files = {name: text.encode("utf-8") for name, text in definition.sources.items()}
    files[file_name] = form.xml.data.encode("utf-8")
    problems, results = _validate_and_maybe_deploy(files, deploy=True)
    listed = [_problem_json(p) for p in problems]
    mine = next((r for r in results if r.key == key), None)
    if mine is None:
        return jsonify(ok=False, problems=listed), 422
    if not mine.created:
        return jsonify(ok=False, problems=listed,
                       message=_("Nothing changed: version %(version)d already has this content.",
                                 version=mine.version)), 409
    flash(_("Deployed %(key)s version %(version)d.", key=key, version=mine.version), "success")
    return jsonify(ok=True, version=mine.version, problems=listed,
                   url=url_for("designer.definition", key=key, version=mine.version))


def _problem_json(problem) -> dict:
    return {"file": problem.file, "line": problem.line, "element_id": problem.element_id,
            "element_name": problem.element_name, "severity": problem.severity, "message": problem.message}
