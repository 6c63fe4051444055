"""The REST API under ``/api/v1``: JSON, described by the OpenAPI document at
``/api/v1/openapi.json``, authenticated by personal tokens (webui/api/tokens.py), with
the UI's authorization rules (webui/access.py). docs/api.md explains it with examples.

Modules: ``operations`` declares operations (route, document, checks, auth, metrics,
logs), ``schema`` the JSON Schema subset and its checker, ``errors`` the JSON errors;
``work`` and ``customers`` are the resources; ``document`` assembles the OpenAPI document.
"""

from __future__ import annotations

from flask import Flask, jsonify

from webui.api.operations import Api

api = Api("api", "/api/v1")

# The resource modules declare their operations on ``api`` when imported.
from webui.api import customers, work  # noqa: E402,F401
from webui.api import errors  # noqa: E402
from webui.api.document import ERROR, document  # noqa: E402

bp = api.blueprint
api.schema("Error", ERROR)
errors.register_handlers(bp)


@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3 document; public, like any API's description."""
    return jsonify(document(api))


def init_app(app: Flask) -> None:
    errors.answer_routing_errors_in_json(app)
