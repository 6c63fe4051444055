"""Fixtures of the web UI's tests (the app and its small company come from tests/support/office.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(app):
    """A browser-like client, signed in as nobody."""
    return app.test_client()
