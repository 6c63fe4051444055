"""The web UI's texts outside a request (errors it raises for the CLI and the API), from
the same catalogs Flask-Babel reads (``webui/translations``); see ``engine.texts``."""

from __future__ import annotations

from pathlib import Path

from engine.texts import Catalog

WEBUI_TEXTS = Catalog(Path(__file__).parent / "translations")
_ = WEBUI_TEXTS.gettext
