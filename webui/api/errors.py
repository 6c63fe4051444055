"""Every answer of the API that is not a success: JSON ``{code, message, fields?}``.

The engine's and the domain's deliberate errors map to statuses as in the UI (a lost
race is 409, never 500), and say more: ``reason`` (the error's own stable code, e.g.
``unknown_user``), its ``params``, the ``message`` and ``fields`` in the token user's
language, and per field its ``reason`` and ``params`` in ``field_reasons``. Anything
unexpected is logged with its traceback and answered 500 with a code, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from engine.errors import (
    Conflict,
    CrmflowError,
    InvalidFormData,
    NotAuthorized,
    NotFound,
    ProcessFailed,
    StaleWorkItem,
    WorkItemClosed,
)
from engine.texts import DEFAULT_LOCALE
from processes.errors import DuplicateCustomer, InvalidData

log = logging.getLogger("crmflow.api")

API_PREFIX = "/api/"
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests"}


class ApiError(Exception):
    """An answer the API gives on purpose."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.extra = status, code, message, fields, extra


def error_response(status: int, code: str, message: str, fields: dict[str, str] | None = None,
                   **extra: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="crmflow"'
    return response


def invalid(fields: dict[str, str], message: str = "Some values need fixing; see fields.") -> ApiError:
    return ApiError(422, "invalid", message, fields)


def reader_locale() -> str:
    """The language of the token's user (the request's person), else crmflow's default."""
    person = g.get("api_person")
    return person.locale if person is not None else DEFAULT_LOCALE


def from_engine_error(error: CrmflowError) -> ApiError:
    """The engine's and the domain's deliberate errors as API errors, in the reader's language."""
    locale = reader_locale()
    api_error = _api_error(error, locale)
    api_error.extra.update(reason=error.code, params=error.text.arguments(locale))
    if isinstance(error, (InvalidFormData, InvalidData)):
        api_error.extra["field_reasons"] = {name: {"reason": problem.code, "params": problem.text.arguments(locale)}
                                            for name, problem in error.errors.items()}
    return api_error


def _api_error(error: CrmflowError, locale: str) -> ApiError:
    message = error.render(locale)
    if isinstance(error, StaleWorkItem):
        return ApiError(409, "stale_work_item", message, work_item_id=error.item_id,
                        expected_version=error.expected, current_version=error.actual)
    if isinstance(error, WorkItemClosed):
        return ApiError(409, "work_item_closed", message, work_item_id=error.item_id, item_status=error.status)
    if isinstance(error, DuplicateCustomer):
        return ApiError(409, "duplicate_customer", message, candidates=[
            {"customer_id": c.customer_id, "name": c.name, "inn": c.inn,
             "reasons": [reason.render(locale) for reason in c.reasons],
             "keys": [{"kind": reason.kind, "value": reason.value} for reason in c.reasons]}
            for c in error.candidates])
    if isinstance(error, Conflict):
        return ApiError(409, "conflict", message)
    if isinstance(error, NotAuthorized):
        return ApiError(403, "forbidden", message)
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", message)
    if isinstance(error, (InvalidFormData, InvalidData)):
        return invalid({name: problem.render(locale) for name, problem in error.errors.items()}, message)
    if isinstance(error, ProcessFailed):
        return ApiError(422, "process_failed", message)
    return ApiError(422, "refused", message)


def answer_error(error: ApiError | CrmflowError | HTTPException) -> Response:
    if isinstance(error, CrmflowError):
        error = from_engine_error(error)
    if isinstance(error, HTTPException):
        code = error.code or 500
        return error_response(code, _HTTP_CODES.get(code, "error"), error.description or error.name)
    return error_response(error.status, error.code, error.message, error.fields, **error.extra)


def register_handlers(blueprint: Blueprint) -> None:
    """Operations answer their own errors (webui/api/operations.py); these catch what is
    raised around them."""
    blueprint.register_error_handler(ApiError, answer_error)
    blueprint.register_error_handler(CrmflowError, answer_error)
    blueprint.register_error_handler(HTTPException, answer_error)

    @blueprint.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("Unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on the server; it has been logged.")


def answer_routing_errors_in_json(app: Flask) -> None:
    def json_routing_errors():
        """An unknown path or a wrong method under /api/ is answered in JSON too (no
        view ran, so the blueprint's handlers are not asked; the UI's HTML pages would be)."""
        problem = request.routing_exception
        if isinstance(problem, HTTPException) and problem.code in (404, 405) and request.path.startswith(API_PREFIX):
            response = error_response(problem.code, _HTTP_CODES[problem.code],
                                      "There is no such API endpoint; see /api/v1/openapi.json."
                                      if problem.code == 404 else "This endpoint does not take that method.")
            if problem.code == 405:
                response.headers["Allow"] = ", ".join(problem.valid_methods or ())
            return response
        return None

    # First of the app's before-request hooks: CSRF protection would refuse such a POST with an HTML page.
    app.before_request_funcs.setdefault(None, []).insert(0, json_routing_errors)
