"""Browser tests: the real app served on 127.0.0.1 in a thread, driven by Playwright in
Debian's Chromium (/usr/bin/chromium; the set-up installs it, never `playwright install`)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from support import REPOSITORY
from support.office import PASSWORD, build_office
from webui import create_app

SCREENSHOTS = REPOSITORY / "docs" / "screenshots"


@pytest.fixture
def office(engine):
    build_office(engine)
    return engine


@pytest.fixture
def live_app(system, office):
    """The app with its production settings (CSRF on)."""
    return create_app({"SECRET_KEY": "browser-test", "BABEL_DEFAULT_TIMEZONE": "UTC"}, system=system)


@pytest.fixture
def live_url(live_app):
    """The app served on a free port of 127.0.0.1 for one test."""
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def sign_in(browser, live_url):
    """sign_in("ann") -> a page signed in as ann, in a browser context of its own."""
    contexts = []

    def open_as(username: str, width: int = 1280, height: int = 860):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_url}/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url)
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
