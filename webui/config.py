"""Settings from the environment, so the same build runs on a laptop and in production.

CRMFLOW_DATABASE_URL  the engine's database (default: a SQLite file under ./instance/)
CRMFLOW_SECRET_KEY    signs sessions and CSRF tokens; without it a random key is made once
                      and kept in instance/secret_key (so a restart signs nobody out; several
                      machines must share one key through this variable)
CRMFLOW_TIMEZONE      the time zone dates are shown in (default Europe/Moscow)
CRMFLOW_NODE_MODULES  where `npm ci` put bpmn-js (default: node_modules beside webui/)
CRMFLOW_SECURE_COOKIES=1  session cookies only over HTTPS
CRMFLOW_CLAIMS_PER_HOUR  self-service claims accepted per client address and hour (default 5)
CRMFLOW_RATELIMIT_STORAGE_URI  where every web process counts rate limits: a Redis URI
                      (redis://host:6379/0); default crmflow's database
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from engine.db import database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def settings_from_environment() -> dict[str, Any]:
    secure = os.environ.get("CRMFLOW_SECURE_COOKIES") == "1"
    return {
        "CRMFLOW_DATABASE_URL": database_url(),
        "SECRET_KEY": os.environ.get("CRMFLOW_SECRET_KEY"),
        "BABEL_DEFAULT_LOCALE": "ru",
        "BABEL_DEFAULT_TIMEZONE": os.environ.get("CRMFLOW_TIMEZONE", "Europe/Moscow"),
        "CRMFLOW_NODE_MODULES": os.environ.get("CRMFLOW_NODE_MODULES", str(PROJECT_ROOT / "node_modules")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "CRMFLOW_CLAIMS_PER_HOUR": int(os.environ.get("CRMFLOW_CLAIMS_PER_HOUR", "5")),
        "CRMFLOW_RATELIMIT_STORAGE_URI": os.environ.get("CRMFLOW_RATELIMIT_STORAGE_URI"),
        # Uploaded BPMN files are a few hundred kilobytes at most; claim attachments up to 10 MB.
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    }


INSTANCE = PROJECT_ROOT / "instance"


def ensure_secret_key(config, folder: Path = INSTANCE) -> None:
    """Without CRMFLOW_SECRET_KEY, the key made on the first start and kept in
    ``folder/secret_key`` (readable by its owner only); every process of this machine reads
    the same one."""
    if config.get("SECRET_KEY"):
        return
    path = folder / "secret_key"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        config["SECRET_KEY"] = path.read_text().strip()
        return
    key = secrets.token_hex(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    config["SECRET_KEY"] = key
