"""Logging for the server and the worker processes: plain text for a person at a terminal,
or one JSON object per line for a log collector.

CRMFLOW_LOG_FORMAT  ``json`` or ``text`` (default)
CRMFLOW_LOG_LEVEL   DEBUG, INFO (default), WARNING ...

Ids given as ``extra`` (``log.info(..., extra={"instance_id": 7, "work_item_id": 12})``)
become fields of the JSON line, so a collector can find everything about one instance
or work item across every process.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

# The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter_from_environment() -> logging.Formatter:
    form = os.environ.get("CRMFLOW_LOG_FORMAT", "text").lower()
    if form not in ("json", "text"):
        raise ValueError(f"CRMFLOW_LOG_FORMAT={form!r}: use json or text")
    return JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging() -> None:
    """The root logger writes to stderr in the format of CRMFLOW_LOG_FORMAT."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_from_environment())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("CRMFLOW_LOG_LEVEL", "INFO").upper())
