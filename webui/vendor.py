"""bpmn-js and the Camunda moddle descriptor, served from the local node_modules that
the set-up fills with `npm ci`: the product works on a network without internet."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory, url_for

bp = Blueprint("vendor", __name__, url_prefix="/vendor")

# Only these folders of node_modules are reachable, never the whole tree.
PACKAGES = {
    "bpmn-js": "bpmn-js/dist",
    "camunda-bpmn-moddle": "camunda-bpmn-moddle/resources",
    # bpmn-auto-layout and the ES modules it imports (see templates/_import_map.html).
    "bpmn-auto-layout": "bpmn-auto-layout/dist",
    "bpmn-moddle": "bpmn-moddle/dist",
    "moddle": "moddle/dist",
    "moddle-xml": "moddle-xml/dist",
    "saxen": "saxen/dist",
    "min-dash": "min-dash/dist",
    # Chart.js for the analytics pages (its UMD build, which bundles its one dependency).
    "chart.js": "chart.js/dist",
}
# The names an import map gives the ES modules above.
ES_MODULES = ("bpmn-auto-layout", "bpmn-moddle", "moddle", "moddle-xml", "saxen", "min-dash")


@bp.route("/<package>/<path:filename>")
def asset(package: str, filename: str):
    folder = PACKAGES.get(package)
    if folder is None:
        abort(404)
    root = Path(current_app.config["CRMFLOW_NODE_MODULES"]) / folder
    if not root.is_dir():
        abort(404, description=f"{package} is not installed: run `npm ci` in the project folder.")
    return send_from_directory(root, filename, max_age=86400)


def init_app(app) -> None:
    @app.context_processor
    def module_urls():
        return {"ES_MODULE_URLS": [(name, url_for("vendor.asset", package=name, filename="index.js"))
                                   for name in ES_MODULES]}
