"""Fixtures of the REST API's tests: clients that send one user's token with every request."""

from __future__ import annotations

import pytest

from support.api import api_as


@pytest.fixture
def ann(app, office):
    return api_as(app, office, "ann")


@pytest.fixture
def boss(app, office):
    return api_as(app, office, "boss")
