"""Texts for people, in their language: one mechanism, Babel's gettext catalogs, for every layer.

A ``Text`` is a message id (its English wording), an optional plural with its count, and
named parameters. It is built where the words are chosen (an error, an e-mail, a summary)
and rendered where the reader is known: ``text.render("ru")``. ``str(text)`` is English,
for logs and the command line. Counts follow ``ngettext``: the catalog's plural rule picks
the form (Russian has three) and the count is the ``num`` parameter.

Each layer keeps its own catalogs next to its code (``engine/translations``,
``processes/translations``, ``webui/translations``; the web UI's Flask-Babel reads the
latter) and builds its texts with its own ``_`` and ``ngettext``, bound to its catalog::

    from engine.texts import _, ngettext

    _("There is no work item %(item_id)s.", item_id=7)
    ngettext("%(num)d day", "%(num)d days", 3)

Both names are Babel's default extraction keywords, so ``scripts/messages`` finds every
message; they return lazy ``Text`` values, not strings. Parameters may be texts themselves,
``Moment`` values or lists (joined with ", "; a ``Listing`` for another separator), all
rendered in the reader's language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel.support import NullTranslations, Translations

LOCALES = ("ru", "en")
# crmflow's users read Russian first: a reader without a known language gets Russian.
DEFAULT_LOCALE = "ru"
DOMAIN = "messages"


def language_of(locale: Any) -> str:
    """``ru`` or ``en`` for a locale code (``ru_RU``, ``en-GB``), a ``babel.Locale`` or None:
    the default for none, English for any language crmflow does not speak."""
    if locale is None or str(locale) == "":
        return DEFAULT_LOCALE
    language = str(locale).replace("-", "_").split("_")[0].lower()
    return language if language in LOCALES else "en"


class Catalog:
    """A layer's compiled catalogs: ``<directory>/<locale>/LC_MESSAGES/messages.mo``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def translations(self, locale: Any) -> NullTranslations:
        return _load(self.directory, language_of(locale))

    def gettext(self, msgid: str, **params: Any) -> Text:
        return Text(msgid, params, catalog=self)

    def ngettext(self, singular: str, plural: str, num: int, **params: Any) -> Text:
        return Text(singular, params, plural=plural, count=num, catalog=self)


@lru_cache(maxsize=None)
def _load(directory: Path, language: str) -> NullTranslations:
    return Translations.load(str(directory), [language], DOMAIN)


@dataclass(frozen=True)
class Text:
    """A message to render later, in the reader's language."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)
    plural: str | None = None
    count: int | None = None
    # None: a text that is not translated (a script's own error, a name): shown as it is.
    catalog: Catalog | None = field(default=None, compare=False)

    @classmethod
    def literal(cls, text: str) -> Text:
        """Words that are not translated, shown as they are in every language."""
        return cls(text)

    def render(self, locale: Any = None) -> str:
        if self.catalog is None:
            return self.msgid
        translations = self.catalog.translations(locale)
        if self.plural is None:
            pattern = translations.gettext(self.msgid)
        else:
            pattern = translations.ngettext(self.msgid, self.plural, self.count)
        values = {name: render_value(value, locale) for name, value in self.params.items()}
        if self.plural is not None:
            values.setdefault("num", self.count)
        # As gettext's callers do: a message without parameters may hold a bare "%".
        return pattern % values if values else pattern

    def arguments(self, locale: Any = None) -> dict[str, Any]:
        """The parameters as plain JSON values (texts rendered in ``locale``), for an API."""
        values = {name: plain_value(value, locale) for name, value in self.params.items()}
        if self.plural is not None:
            values.setdefault("num", self.count)
        return values

    def __str__(self) -> str:
        return self.render("en")

    def __hash__(self) -> int:
        return hash((self.msgid, self.plural, self.count))


@dataclass(frozen=True)
class Moment:
    """A date and time, shown in the reader's format in ``zone`` and labelled with it
    ("23.11.2026, 18:00 (Europe/Moscow)"); without a zone, in UTC."""

    value: datetime
    zone: ZoneInfo | None = None

    def render(self, locale: Any = None) -> str:
        zone = self.zone or ZoneInfo("UTC")
        shown = babel_dates.format_datetime(self.value, "short", tzinfo=zone, locale=language_of(locale))
        return f"{shown} ({self.zone.key})" if self.zone else f"{shown} UTC"

    def __str__(self) -> str:
        return self.render("en")


@dataclass(frozen=True)
class Listing:
    """Items joined with ``separator`` (a list parameter is joined with ", ")."""

    items: Sequence[Any]
    separator: str = ", "

    def render(self, locale: Any = None) -> str:
        return self.separator.join(str(render_value(item, locale)) for item in self.items)

    def __str__(self) -> str:
        return self.render("en")


def render_value(value: Any, locale: Any) -> Any:
    if isinstance(value, (Text, Moment, Listing)):
        return value.render(locale)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return ", ".join(str(render_value(item, locale)) for item in value)
    return value


def plain_value(value: Any, locale: Any) -> Any:
    if isinstance(value, Text):
        return value.render(locale)
    if isinstance(value, Moment):
        return value.value.isoformat()
    if isinstance(value, Listing):
        return [plain_value(item, locale) for item in value.items]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain_value(item, locale) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


ENGINE_TEXTS = Catalog(Path(__file__).parent / "translations")
_ = ENGINE_TEXTS.gettext
ngettext = ENGINE_TEXTS.ngettext
