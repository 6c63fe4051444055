"""The CRM's texts for people, from its own catalogs (``processes/translations``); see
``engine.texts``."""

from __future__ import annotations

from pathlib import Path

from engine.texts import Catalog

PROCESSES_TEXTS = Catalog(Path(__file__).parent / "translations")
_ = PROCESSES_TEXTS.gettext
ngettext = PROCESSES_TEXTS.ngettext
