"""The OpenAPI 3 document of the API, made from the declared operations (so it cannot
drift from what the server does), served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from webui.api.operations import PATH_PARAMETER, Api, Operation
from webui.api.schema import MAX_ID, Schema, ref

ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "Stable, for programs: invalid, stale_work_item, "
                                                  "duplicate_customer, forbidden ..."},
        "message": {"type": "string", "description": "For people, in the token user's language: what is wrong "
                                                     "and what to do."},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Validation errors: field (``contacts[1].name``) -> what is wrong with it."},
        "reason": {"type": "string", "description": "An engine or domain refusal's own stable code, finer than "
                                                    "``code``: unknown_user, work_item_not_found, not_a_candidate ..."},
        "params": {"type": "object", "additionalProperties": True,
                   "description": "The values the message names (an item id, a user name ...)."},
        "field_reasons": {"type": "object", "description": "Per field: its ``reason`` (required, too_large, "
                                                           "not_an_option ...) and ``params``.",
                          "additionalProperties": {"type": "object", "properties": {
                              "reason": {"type": "string"}, "params": {"type": "object", "additionalProperties": True}},
                              "required": ["reason", "params"]}},
    },
    "required": ["code", "message"],
    "additionalProperties": True,
}
_ERRORS = {
    400: "The body is not valid JSON.",
    401: "No token, or an unknown, revoked or expired one.",
    403: "The token's user may not do this (the UI's rules).",
    404: "No such thing.",
    409: "Someone changed it first: a stale version, a closed item, likely duplicates.",
    415: "The body is not JSON.",
    422: "Values that need fixing; ``fields`` names each.",
}


def document(api: Api) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        path = api.url_prefix + PATH_PARAMETER.sub(r"{\2}", op.rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "crmflow API",
            "version": "1",
            "description": "Work items, process instances, customers, deals and claims of crmflow. "
                           "Authenticate with a personal token: `Authorization: Bearer crm_...` "
                           "(the API tokens page, or `crmflow tokens create`). Every error is JSON "
                           "`{code, message, fields?}`. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": api.components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "A personal API token, crm_..."}},
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID} if is_integer
                   else {"type": "string"}}
                  for name, is_integer in op.path_parameters]
    parameters += [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                    "schema": {**p.schema, **({"default": p.default} if p.default is not None else {})}}
                   for p in op.query]
    success: dict[str, Any] = {"description": "Done."}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": op.response}}
    responses: dict[str, Any] = {str(op.status): success}
    statuses = {401, 403}
    if op.path_parameters:
        statuses.add(404)
    if op.conflicts:
        statuses.add(409)
    if op.body is not None:
        statuses |= {400, 415, 422}
    if op.query:
        statuses.add(422)
    for status in sorted(statuses):
        responses[str(status)] = _error(_ERRORS[status])
    responses["default"] = _error("Any other failure (e.g. 500), in the same form.")
    operation: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag],
                                 "responses": responses}
    if op.description:
        operation["description"] = op.description
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    operation["security"] = [{"token": []}]
    return operation


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
