"""Declaring an API operation once: its Flask route, its OpenAPI description, the checks
of its path, query and body against that description, token authentication, the roles
it needs, the step-latency metric and one structured log line per request.

    @api.operation("POST", "/work-items/<int:item_id>/claim", "claimWorkItem", tag="Work items",
                   summary="Take an item from a queue", response=ref("WorkItem"), conflicts=True)
    def claim(person, item_id): ...

The view receives the signed-in ``Person`` (webui/access.py: the UI's rules apply as
they are), the path values, and ``query`` / ``body`` when declared, already checked.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from engine.errors import CrmflowError
from webui.access import Person, engine, person_by_id
from webui.api import tokens
from webui.api.errors import ApiError, answer_error, invalid
from webui.api.schema import MAX_ID, Checker, Schema, query_value, ref
from webui.metrics import observe_request

log = logging.getLogger("crmflow.api")

PATH_PARAMETER = re.compile(r"<(?:(int):)?(\w+)>")
STAFF = ("employee", "manager")  # who works with customers, deals and claims (as in the UI)


@dataclass(frozen=True)
class Parameter:
    name: str
    schema: Schema
    description: str
    required: bool = False
    default: Any = None


@dataclass
class Operation:
    method: str
    rule: str
    operation_id: str
    tag: str
    summary: str
    description: str
    roles: tuple[str, ...]
    response: Schema | None
    status: int
    body: Schema | None
    query: tuple[Parameter, ...]
    conflicts: bool
    path_parameters: list[tuple[str, bool]] = field(default_factory=list)  # (name, is an integer)


class Api:
    def __init__(self, name: str, url_prefix: str):
        self.url_prefix = url_prefix
        self.blueprint = Blueprint(name, __name__, url_prefix=url_prefix)
        self.operations: list[Operation] = []
        self.components: dict[str, Schema] = {}
        self.checker = Checker(self.components)

    def schema(self, name: str, schema: Schema) -> Schema:
        """Name a schema in the document's components; returns a reference to it."""
        self.components[name] = schema
        return ref(name)

    def operation(self, method: str, rule: str, operation_id: str, *, tag: str, summary: str,
                  description: str = "", roles: tuple[str, ...] = (), response: Schema | None = None,
                  status: int = 200, body: Schema | None = None, query: tuple[Parameter, ...] = (),
                  conflicts: bool = False) -> Callable:
        """``roles``: one of them is needed (admins pass every check, as in the UI); none:
        any token's user may call it. ``conflicts``: the call may answer 409."""
        op = Operation(method, rule, operation_id, tag, summary, description, roles, response, status, body,
                       query, conflicts,
                       [(name, kind == "int") for kind, name in PATH_PARAMETER.findall(rule)])
        self.operations.append(op)

        def decorate(view: Callable) -> Callable:
            @wraps(view)
            def endpoint(**path: Any) -> Response:
                started = time.perf_counter()
                g.log_context = {}
                try:
                    response = self._answer(op, view, path)
                except (ApiError, CrmflowError, HTTPException) as error:
                    response = answer_error(error)
                except Exception:
                    _log_request(op, 500, time.perf_counter() - started, path)
                    raise  # the blueprint's handler logs the traceback and answers 500
                _log_request(op, response.status_code, time.perf_counter() - started, path)
                return response

            self.blueprint.add_url_rule(rule, endpoint=operation_id, view_func=endpoint, methods=[method])
            return view

        return decorate

    def _answer(self, op: Operation, view: Callable, path: dict[str, Any]) -> Response:
        person = authenticate()
        if op.roles and not person.has_role(*op.roles):
            raise ApiError(403, "forbidden", f"This needs the role {' or '.join(op.roles)}.")
        for name, is_integer in op.path_parameters:
            if is_integer and not 1 <= path[name] <= MAX_ID:
                raise ApiError(404, "not_found", f"There is no {name.removesuffix('_id').replace('_', ' ')} "
                                                 f"{path[name]}.")
        arguments: dict[str, Any] = dict(path)
        if op.query:
            arguments["query"] = self._query(op)
        if op.body is not None:
            arguments["body"] = self._body(op)
        result = view(person, **arguments)
        response = result if isinstance(result, Response) else jsonify(result)
        if not isinstance(result, Response):
            response.status_code = op.status
        return response

    def _query(self, op: Operation) -> dict[str, Any]:
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for parameter in op.query:
            raw = request.args.get(parameter.name)
            if raw is None:
                if parameter.required:
                    errors[parameter.name] = "is required"
                values[parameter.name] = parameter.default
                continue
            value, problems = self.checker.check(parameter.schema, query_value(parameter.schema, raw),
                                                 parameter.name)
            errors.update(problems)
            values[parameter.name] = value
        if errors:
            raise invalid(errors)
        return values

    def _body(self, op: Operation) -> dict[str, Any]:
        if not request.is_json:
            raise ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
        try:
            payload = request.get_json(force=True, silent=False)
        except Exception:  # malformed JSON, or nested deeper than the parser goes
            raise ApiError(400, "bad_request", "The body is not valid JSON.") from None
        value, errors = self.checker.check(op.body, payload)
        if errors:
            raise invalid(errors)
        return value


def authenticate() -> Person:
    """The person whose token the request carries (``Authorization: Bearer crm_...``)."""
    header = request.headers.get("Authorization", "")
    scheme, _space, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "Send a personal API token: Authorization: Bearer <token>. "
                                            "Make one on the API tokens page or with `crmflow tokens create`.")
    user_id = tokens.user_id_of_token(engine(), secret.strip())
    person = person_by_id(user_id) if user_id is not None else None
    if person is None:
        raise ApiError(401, "unauthorized", "The token is unknown, revoked or expired, or its user is inactive.")
    g.api_person = person
    return person


def note(**ids: int | None) -> None:
    """Name the instance or work item a request acted on, for its log line."""
    g.log_context.update({key: value for key, value in ids.items() if value is not None})


def _log_request(op: Operation, status: int, seconds: float, path: dict[str, Any]) -> None:
    person = g.get("api_person")
    context = {"work_item_id": path.get("item_id"), "instance_id": path.get("instance_id"),
               **g.get("log_context", {})}
    observe_request(op.operation_id, op.method, status, seconds)
    log.info("%s %s %s %.1f ms", request.method, request.path, status, seconds * 1000, extra={
        "request_id": request.headers.get("X-Request-Id") or uuid.uuid4().hex,
        "operation": op.operation_id,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "user": person.username if person else None,
        **{key: value for key, value in context.items() if value is not None},
    })
