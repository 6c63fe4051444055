"""Rate limits with Flask-Limiter, counted in storage every web process shares: the
database (webui/limits.py's DatabaseStorage, table rate_limit_counters) or Redis. The
self-service claim form's limit holds across two workers, its window ends by the engine's
clock, and the over-limit page is in the visitor's language."""

from __future__ import annotations

import threading

import pytest
from limits.storage import RedisStorage

from engine.runtime import Engine
from processes.system import build_system
from support.office import register_customer, text
from webui import create_app, limits

CONFIG = {"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test-secret", "BABEL_DEFAULT_TIMEZONE": "UTC",
          "CRMFLOW_CLAIMS_PER_HOUR": 3}
CLAIM = {"identity": "info@romashka.example", "complainant": "Ivan", "reason": "quality", "essence": "Wet boxes"}


def visitor(app, address="203.0.113.7", language="en"):
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=address, HTTP_ACCEPT_LANGUAGE=language)
    return client


@pytest.fixture
def workers(system, office, database_url, clock):
    """Two apps, each on crmflow of its own over the same database: two gunicorn workers."""
    second = build_system(database_url, clock=clock, webhooks=None)
    apps = create_app(CONFIG, system=system), create_app(CONFIG, system=second)
    register_customer(apps[0])
    yield apps
    second.dispose()


def test_the_claim_limit_holds_across_two_workers_and_its_window_ends(workers, clock):
    first, second = workers
    statuses = [visitor(app).post("/claim", data=CLAIM).status_code for app in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    assert visitor(first).post("/claim", data=CLAIM).status_code == 429
    assert visitor(second, address="198.51.100.1").post("/claim", data=CLAIM).status_code == 200  # its own count
    assert visitor(second).get("/claim").status_code == 200  # reading the form costs nothing

    clock.advance(minutes=59)
    assert visitor(second).post("/claim", data=CLAIM).status_code == 429
    clock.advance(minutes=1)
    assert [visitor(app).post("/claim", data=CLAIM).status_code for app in (second, first)] == [200, 200]


def test_over_the_limit_the_form_says_so_in_the_visitors_language(workers):
    first, _ = workers
    for _ in range(3):
        visitor(first).post("/claim", data=CLAIM)
    english = visitor(first, language="en").post("/claim", data=CLAIM)
    russian = visitor(first, language="ru").post("/claim", data=CLAIM)
    assert (english.status_code, russian.status_code) == (429, 429)
    assert "Too many claims from your address; please try again in an hour or call us." in text(english)
    assert "С вашего адреса отправлено слишком много претензий; попробуйте через час или позвоните нам." \
        in text(russian)
    assert 'value="Ivan"' in russian.get_data(as_text=True)  # what they typed is kept


def test_concurrent_hits_from_two_processes_storages_are_each_counted_once(office, database_url, clock):
    second = Engine(database_url, clock=clock)  # the storage needs only the database
    storages = [limits.DatabaseStorage(db=engine.db, clock=clock) for engine in (office, second)]
    counts: list[int] = []
    lock = threading.Lock()

    def hit(storage):
        for _ in range(25):
            count = storage.incr("LIMITER/203.0.113.7/claims", 3600)
            with lock:
                counts.append(count)

    threads = [threading.Thread(target=hit, args=(storage,)) for storage in storages for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    second.dispose()
    # Every hit got a count of its own: no two read the same value and wrote the same sum.
    assert sorted(counts) == list(range(1, 151))
    assert storages[1].get("LIMITER/203.0.113.7/claims") == 150


def test_the_database_storage_keeps_windows_by_the_clock_and_sweeps_ended_ones(office, clock):
    storage = limits.DatabaseStorage(db=office.db, clock=clock)
    start = clock.now
    assert [storage.incr("a", 60), storage.incr("a", 60), storage.incr("b", 600, amount=5)] == [1, 2, 5]
    assert (storage.get("a"), storage.get_expiry("a")) == (2, start.timestamp() + 60)
    clock.advance(seconds=60)
    assert storage.get("a") == 0 and storage.get("b") == 5
    assert storage.incr("a", 60) == 1 and storage.get_expiry("a") == clock.now.timestamp() + 60  # a new window
    clock.advance(minutes=11)
    storage.incr("c", 60)  # a minute after the last sweep: ended windows go
    with office.db.connect() as connection:
        keys = connection.execute(limits.counters.select()).all()
    assert [row.key for row in keys] == ["c"]
    storage.clear("c")
    assert storage.get("c") == 0 and storage.check() is True and storage.reset() == 0


def test_a_redis_uri_puts_the_counts_in_redis(system, office):
    app = create_app({**CONFIG, "CRMFLOW_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"}, system=system)
    assert isinstance(limits.limiter(app).storage, RedisStorage)
    assert isinstance(limits.limiter(create_app(CONFIG, system=system)).storage, limits.DatabaseStorage)
