"""What one web process measures for /metrics (``webui.ops``): the latency of the engine and
CRM facade calls the REST API makes, and of the API's requests.

The values are kept by prometheus_client; in gunicorn's multiprocess mode they live in files
under PROMETHEUS_MULTIPROC_DIR and every worker's /metrics adds them all up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Histogram

PROCESS_METRICS = CollectorRegistry()
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ENGINE_STEP_SECONDS = Histogram(
    "crmflow_engine_step_seconds", "Time of one engine or CRM facade call made by the web API, by operation.",
    ["operation"], buckets=_LATENCY_BUCKETS, registry=PROCESS_METRICS)
API_REQUEST_SECONDS = Histogram(
    "crmflow_api_request_seconds", "Time to answer one REST API request, by operation and status.",
    ["operation", "method", "status"], buckets=_LATENCY_BUCKETS, registry=PROCESS_METRICS)


@contextmanager
def engine_step(operation: str) -> Iterator[None]:
    """Time one facade call (``start``, ``complete`` ...) into the step latency histogram."""
    started = time.perf_counter()
    try:
        yield
    finally:
        ENGINE_STEP_SECONDS.labels(operation).observe(time.perf_counter() - started)


def observe_request(operation: str, method: str, status: int, seconds: float) -> None:
    API_REQUEST_SECONDS.labels(operation, method, str(status)).observe(seconds)
