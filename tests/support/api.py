"""A client of the REST API that sends one user's token with every request."""

from __future__ import annotations

from webui.api import tokens as token_store


class ApiClient:
    """A test client that sends one user's token with every request."""

    def __init__(self, app, token: str | None):
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, url, **kwargs):
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url, json=None, **kwargs):
        return self.client.post(url, headers=self.headers, json=json if json is not None else {}, **kwargs)


def api_as(app, office, username: str) -> ApiClient:
    return ApiClient(app, token_store.create_token(office, username, "tests").secret)
