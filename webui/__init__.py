"""The crmflow web UI: a Flask app on top of the engine facade.

``create_app()`` builds the app from the environment (see ``webui.config``) on crmflow as
``processes.system`` builds it; tests pass their ``System`` and overrides. Blueprints per area: ``auth`` (login, language), ``inbox``
(employees), ``board`` (managers), ``designer`` (process definitions and the modeler),
``analytics`` (managers' funnel, plan and fact, claims, comparison and heatmap),
``instances`` (one process instance), ``customers`` (the customer card, starting deals and
claims, the public self-service claim form), ``deals`` (one deal with its plan, moves and
tasks; one claim with its files), ``notifications`` (the bell), ``vendor`` (bpmn-js from
the local node_modules).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from processes.system import System, build_system


def create_app(config: dict[str, Any] | None = None, system: System | None = None) -> Flask:
    """The web app on ``system`` (tests pass theirs), else on crmflow built for the
    configured database."""
    from webui import (analytics, auth, board, customers, deals, designer, errors, i18n, inbox, instances, limits,
                       notifications, vendor)
    from webui.config import ensure_secret_key, settings_from_environment

    app = Flask(__name__)
    app.config.update(settings_from_environment())
    app.config.update(config or {})
    ensure_secret_key(app.config)
    if system is None:
        system = build_system(app.config["CRMFLOW_DATABASE_URL"])
    app.extensions["crmflow"] = system

    auth.init_app(app)
    vendor.init_app(app)
    limits.init_app(app, system.engine.db, system.engine.clock)
    notifications.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    for blueprint in (auth.bp, inbox.bp, board.bp, analytics.bp, customers.bp, deals.bp, designer.bp, instances.bp,
                      notifications.bp, vendor.bp):
        app.register_blueprint(blueprint)
    customers.init_app(app)  # limits its registered view
    _add_api_and_operations(app)
    return app


def _add_api_and_operations(app: Flask) -> None:
    """The REST API (/api/v1), /healthz and /metrics, and the page of one's API tokens."""
    from webui import api, auth, ops, tokens

    api.init_app(app)
    ops.init_app(app)
    # The API reads no session cookie, only its bearer token: a forged cross-site request carries none.
    auth.csrf.exempt(api.bp)
    for blueprint in (api.bp, ops.bp, tokens.bp):
        app.register_blueprint(blueprint)
