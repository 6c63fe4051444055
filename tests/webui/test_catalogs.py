"""Every message the code shows a person is translated into Russian and English, every
plural form included, with no fuzzy entry, and the shipped .mo files are the compiled .po
files: the check behind ./scripts/messages, for each layer's catalogs."""

from __future__ import annotations

import io

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from support import REPOSITORY

ROOT = REPOSITORY
LAYERS = ("engine", "processes", "webui")
LOCALES = {"ru": 3, "en": 2}  # and the number of plural forms each has
# As scripts/messages extracts them: Babel's defaults (_, gettext, ngettext, ...) and Flask-Babel's lazy ones.
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


def used_messages(layer: str) -> dict[str | tuple[str, str], str]:
    """Each message id (a pair for a plural) the layer's code and templates use, with where."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {message if isinstance(message, str) else tuple(message[:2]): f"{layer}/{file}:{line}"
            for file, line, message, _comments, _context in extract_from_dir(
                str(ROOT / layer), method_map, options_map, keywords=KEYWORDS)}


def catalog(layer: str, locale: str, suffix: str = "po"):
    path = ROOT / layer / "translations" / locale / "LC_MESSAGES" / f"messages.{suffix}"
    with path.open("rb") as file:
        return read_po(file) if suffix == "po" else read_mo(io.BytesIO(file.read()))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_in_use_is_translated_with_all_its_plural_forms(layer, locale):
    translations = catalog(layer, locale)
    assert translations.num_plurals == LOCALES[locale]
    problems = []
    for msgid, where in sorted(used_messages(layer).items(), key=lambda pair: str(pair[0])):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entry = translations.get(key)
        if entry is None or entry.fuzzy:
            problems.append(f"{where}: {msgid!r} is {'fuzzy' if entry else 'not in the catalog'}")
        elif isinstance(msgid, tuple) != entry.pluralizable:
            shape = "not a plural" if isinstance(msgid, tuple) else "a plural"
            problems.append(f"{where}: {msgid!r} is {shape} in the catalog")
        elif isinstance(msgid, tuple) and (len(entry.string) != LOCALES[locale] or not all(entry.string)):
            problems.append(f"{where}: {msgid!r} lacks a plural form: {entry.string!r}")
        elif not entry.string:
            problems.append(f"{where}: {msgid!r} has no translation")
    assert problems == [], f"translate them in {layer}/translations/{locale} (run ./scripts/messages first)"


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("locale", LOCALES)
def test_no_catalog_holds_a_fuzzy_or_a_broken_entry(layer, locale):
    translations = catalog(layer, locale)
    assert not translations.fuzzy, "the catalog's header is marked fuzzy"
    assert [entry.id for entry in translations if entry.id and entry.fuzzy] == []
    # Babel's own checks: the same %(name)s placeholders in the translation as in the message.
    assert [(entry.id, [str(error) for error in errors]) for entry, errors in translations.check()] == []


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("locale", LOCALES)
def test_the_shipped_mo_file_is_compiled_from_the_po_file(layer, locale):
    def entries(messages):
        return {_hashable(m.id): _hashable(m.string) for m in messages if m.id}

    assert entries(catalog(layer, locale)) == entries(catalog(layer, locale, "mo")), "run ./scripts/messages"


def _hashable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value
