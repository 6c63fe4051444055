"""Rate limits with Flask-Limiter, counted where every web process sees the same count.

gunicorn runs several workers, each with its own memory: a limit counted in memory would
let each worker allow the whole limit. So the counts are in Redis when
``CRMFLOW_RATELIMIT_STORAGE_URI`` names one (``redis://host:6379/0``; any storage URI of
the ``limits`` library works), else in crmflow's own database (``DatabaseStorage``, the
table ``rate_limit_counters``).

Each app has its limiter (``limiter(app)``): tests and tools build several apps in one
process, each on its own database. A limit is put on an endpoint with
``limit_endpoint(app, endpoint, rate, on_breach=...)``; ``on_breach`` gives the page a
person sees when over the limit (the self-service claim form shows its own), else a 429
page. The windows are fixed (``limits``' fixed-window strategy): a window of an hour
starts with its first hit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, render_template
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import Storage
from sqlalchemy import Engine, case, delete, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from engine.db import WRITE
from webui.readmodel import RATE_LIMIT_COUNTERS

LIMITER = "crmflow_limiter"
DATABASE_SCHEME = "crmflow-db"
counters = RATE_LIMIT_COUNTERS


def init_app(app: Flask, db: Engine, clock: Callable[[], datetime]) -> None:
    """The app's limiter, on Redis or on ``db``; ``clock`` is the engine's (tests move it)."""
    uri = app.config.get("CRMFLOW_RATELIMIT_STORAGE_URI") or f"{DATABASE_SCHEME}://"
    options: dict[str, Any] = {"db": db, "clock": clock} if uri.startswith(f"{DATABASE_SCHEME}:") else {}
    app.extensions[LIMITER] = Limiter(get_remote_address, app=app, storage_uri=uri, storage_options=options,
                                      strategy="fixed-window")

    @app.errorhandler(RateLimitExceeded)
    def too_many(error: RateLimitExceeded):
        if error.response is not None:
            return error.response
        return render_template("error.html", title=error.name, message=error.description), 429


def limiter(app: Flask) -> Limiter:
    return app.extensions[LIMITER]


def limit_endpoint(app: Flask, endpoint: str, rate: str, **options: Any) -> None:
    """Flask-Limiter's ``limit(rate, **options)`` on an endpoint of this app, with this app's
    limiter (the blueprint's view is shared by every app, so it is wrapped here, per app)."""
    app.view_functions[endpoint] = limiter(app).limit(rate, **options)(app.view_functions[endpoint])


class DatabaseStorage(Storage):
    """A ``limits`` storage in crmflow's database: one row per key and window, counted by one
    statement (an UPSERT that starts a new window when the old one has ended, RETURNING the
    count), so that concurrent hits from any process are each counted once, on SQLite and
    PostgreSQL alike."""

    STORAGE_SCHEME = [DATABASE_SCHEME]
    # Ended windows are deleted at most this often, by whichever hit comes then.
    SWEEP_EVERY = timedelta(minutes=1)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *, db: Engine,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.db, self.clock = db, clock
        self._write = db.execution_options(**WRITE)
        self._insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.dialect.name]
        self._swept_at: datetime | None = None
        self._sweep_lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self.clock()
        ends = now + timedelta(seconds=expiry)
        ended = counters.c.expires_at <= now
        upsert = self._insert(counters).values(key=key, count=amount, expires_at=ends).on_conflict_do_update(
            index_elements=[counters.c.key], set_={
                "count": case((ended, amount), else_=counters.c.count + amount),
                "expires_at": case((ended, literal(ends, counters.c.expires_at.type)), else_=counters.c.expires_at),
            }).returning(counters.c.count)
        with self._write.begin() as connection:
            count = connection.execute(upsert).scalar_one()
        self._sweep(now)
        return count

    def get(self, key: str) -> int:
        with self.db.connect() as connection:
            count = connection.execute(select(counters.c.count).where(
                counters.c.key == key, counters.c.expires_at > self.clock())).scalar()
        return count or 0

    def get_expiry(self, key: str) -> float:
        now = self.clock()
        with self.db.connect() as connection:
            ends = connection.execute(select(counters.c.expires_at).where(
                counters.c.key == key, counters.c.expires_at > now)).scalar()
        return (ends or now).timestamp()

    def check(self) -> bool:
        try:
            with self.db.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._write.begin() as connection:
            return connection.execute(delete(counters)).rowcount

    def clear(self, key: str) -> None:
        with self._write.begin() as connection:
            connection.execute(delete(counters).where(counters.c.key == key))

    def _sweep(self, now: datetime) -> None:
        with self._sweep_lock:
            if self._swept_at is not None and now - self._swept_at < self.SWEEP_EVERY:
                return
            self._swept_at = now
        with self._write.begin() as connection:
            connection.execute(delete(counters).where(counters.c.expires_at <= now))

