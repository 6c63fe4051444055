"""schemathesis against /api/v1/openapi.json: generated requests to every operation, on
SQLite and PostgreSQL, must never get a 5xx nor an answer that breaks the document
(status, content type, body schema, headers)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.office import register_customer, start_approval
from webui.api import api
from webui.api import tokens as token_store
from webui.api.document import document

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def api_app(app, office):
    # Something to find: items of ann's and a customer, so that generated ids sometimes hit.
    for n in range(3):
        start_approval(office, key=f"DEAL-{n}")
    register_customer(app)
    return app


@pytest.fixture
def token(office):
    # root: the admin passes every role check, so the generated requests reach the handlers' own checks.
    return token_store.create_token(office, "root", "schemathesis").secret


def test_the_served_document_is_the_one_under_test(app):
    assert app.test_client().get("/api/v1/openapi.json").json == document(api)


def test_the_served_document_is_valid_openapi_3(app):
    validate(app.test_client().get("/api/v1/openapi.json").json)  # raises naming what breaks the specification


schema = schemathesis.openapi.from_dict(document(api))


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_answer_breaks_the_document(case, api_app, token):
    case.call_and_validate(app=api_app, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
