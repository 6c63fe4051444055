"""Import a customer base from CSV, Excel (.xlsx) or vCard (Outlook's export) (seed 004).

Every row goes through the same check as a customer registered by hand: bad values are
rejected with the reason, likely duplicates (of existing customers, or of an earlier row
of the same file) are reported as matched and not created twice. A bad row never stops
the import. Rows are committed in batches of BATCH_SIZE: each batch's keys are looked up
in one query and its new customers inserted in bulk; a batch the database refuses is
stored again row by row, each under a savepoint, so that a row lands whole or not at all.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import vobject
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from engine import people
from engine.errors import listed
from engine.runtime import Engine
from engine.texts import Listing, Text
from processes import customers as store
from processes.customers import ContactDraft, CustomerDraft, DuplicateReason, sorted_reasons
from processes.errors import InvalidData, no_such_user
from processes.models import ContactPerson, Customer, CustomerKey
from processes.texts import _, ngettext

BATCH_SIZE = 500
# (kind, value) pairs per duplicate lookup: far below SQLite's and PostgreSQL's parameter limits.
KEY_LOOKUP_CHUNK = 400

# Column headers people use, in Russian and English, for each field of a customer.
HEADERS = {
    "name": ("name", "customer", "company", "organisation", "organization", "наименование", "название",
             "клиент", "контрагент", "организация", "фио"),
    "kind": ("kind", "type", "тип", "вид"),
    "inn": ("inn", "tax id", "инн"),
    "phone": ("phone", "phones", "telephone", "телефон", "телефоны"),
    "email": ("email", "e-mail", "emails", "почта", "электронная почта"),
    "address": ("address", "адрес"),
    "category": ("category", "категория"),
    "importance": ("importance", "важность"),
    "status": ("status", "статус"),
    "relationship_stage": ("relationship stage", "стадия отношений", "стадия"),
    "curator": ("curator", "manager", "куратор", "ответственный", "менеджер"),
    "partner_role": ("role", "partner role", "роль"),
    "contact": ("contact", "contact person", "контактное лицо", "контакт"),
    "position": ("position", "job title", "должность"),
}
KINDS = {"organisation": "organisation", "organization": "organisation", "company": "organisation",
         "юл": "organisation", "юридическое лицо": "organisation", "организация": "organisation", "b2b": "organisation",
         "person": "person", "private": "person", "фл": "person", "физическое лицо": "person", "b2c": "person"}


@dataclass(frozen=True)
class Rejected:
    row: int
    name: str
    reason: Text | Listing  # why, to render in the reader's language (str(): English)


@dataclass(frozen=True)
class Matched:
    row: int
    name: str
    customer_id: int
    reasons: tuple[DuplicateReason, ...]


@dataclass
class ImportReport:
    source: str
    created: list[tuple[int, int]] = field(default_factory=list)  # (row, customer id)
    matched: list[Matched] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.created) + len(self.matched) + len(self.rejected)

    def summary(self) -> Text:
        return _("%(source)s: %(rows)s: %(created)s, %(matched)s, %(rejected)s", source=self.source,
                 rows=ngettext("%(num)d row", "%(num)d rows", self.total),
                 created=ngettext("%(num)d created", "%(num)d created", len(self.created)),
                 matched=ngettext("%(num)d matched an existing customer", "%(num)d matched existing customers",
                                  len(self.matched)),
                 rejected=ngettext("%(num)d rejected", "%(num)d rejected", len(self.rejected)))

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["row", "result", "name", "customer_id", "reason"])
            for row, customer_id in self.created:
                writer.writerow([row, "created", "", customer_id, ""])
            for m in self.matched:
                writer.writerow([m.row, "matched", m.name, m.customer_id, "; ".join(map(str, m.reasons))])
            for r in self.rejected:
                writer.writerow([r.row, "rejected", r.name, "", str(r.reason)])


@dataclass(frozen=True)
class SourceRow:
    number: int  # the row's number in the file (1 = first data row) or the card's
    values: dict[str, Any]
    problem: Text | None = None  # why the row could not be read at all (a broken vCard)


def read_rows(path: Path) -> Iterator[SourceRow]:
    """The file's rows as {field: value}, by its extension."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".xlsx":
        return _xlsx_rows(path)
    if suffix in (".vcf", ".vcard"):
        return _vcard_rows(path)
    raise ValueError(f"{path.name}: unknown file type {suffix!r}; import .csv, .xlsx or .vcf files")


def count_rows(path: Path) -> int:
    return sum(1 for _ in read_rows(path))


def import_customers(engine: Engine, path: Path, by: str, *, curator: str | None = None,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import the file; ``progress(n)`` is told after every n rows. ``curator`` is the
    default curator of rows that name none."""
    report = ImportReport(path.name)
    now = engine.clock()
    with engine.reading() as session:
        people.get_user(session, by)
        if curator:
            people.get_user(session, curator)
    rows = read_rows(path)
    while True:
        batch = list(islice(rows, BATCH_SIZE))
        if not batch:
            break
        with engine.transaction() as session:
            _import_batch(session, batch, report, now, by, curator)
        if progress:
            progress(len(batch))
    report.created.sort()
    report.matched.sort(key=lambda m: m.row)
    report.rejected.sort(key=lambda r: r.row)
    return report


@dataclass
class _Prepared:
    row: SourceRow
    clean: store.CleanCustomer
    curator_id: int | None
    customer_id: int | None = None
    same_as: _Prepared | None = None  # an earlier row of the file this one duplicates
    same_as_reasons: tuple[DuplicateReason, ...] = ()


def _import_batch(session: Session, batch: list[SourceRow], report: ImportReport, now: datetime, by: str,
                  default_curator: str | None) -> None:
    """Check the batch's rows, look all their keys up in one query, and insert the new
    customers in bulk. If the database refuses the bulk insert, the rows are stored one
    by one so that only the refused rows are lost."""
    curators: dict[str, int | None] = {}
    prepared: list[_Prepared] = []
    for row in batch:
        name = str(row.values.get("name") or "").strip()
        if row.problem:
            report.rejected.append(Rejected(row.number, name, row.problem))
            continue
        try:
            draft = _draft(row.values, default_curator)
            clean = store.check_draft(draft)
            curator_id = None
            if draft.curator:
                if draft.curator not in curators:
                    user = people.find_user(session, draft.curator)
                    curators[draft.curator] = user.id if user is not None and user.active else None
                curator_id = curators[draft.curator]
                if curator_id is None:
                    raise InvalidData("customer", {"curator": no_such_user(draft.curator)})
            prepared.append(_Prepared(row, clean, curator_id))
        except InvalidData as problem:
            report.rejected.append(Rejected(row.number, name, Listing(listed(problem.errors), "; ")))

    existing = _existing_keys(session, {key for p in prepared for key in p.clean.keys})
    seen_in_file: dict[tuple[str, str], _Prepared] = {}
    new: list[_Prepared] = []
    for entry in prepared:
        reasons: dict[int, list[DuplicateReason]] = defaultdict(list)
        for key in entry.clean.keys:
            for customer_id in existing.get(key, ()):
                reasons[customer_id].append(DuplicateReason(*key))
        if reasons:
            best = store.rank(reasons)[0]
            report.matched.append(Matched(entry.row.number, _name(entry), best, sorted_reasons(reasons[best])))
            continue
        earlier = [(seen_in_file[key], key) for key in entry.clean.keys if key in seen_in_file]
        if earlier:
            entry.same_as = earlier[0][0]
            entry.same_as_reasons = sorted_reasons(DuplicateReason(*key) for match, key in earlier
                                                   if match is entry.same_as)
            continue
        for key in entry.clean.keys:
            seen_in_file.setdefault(key, entry)
        new.append(entry)

    try:
        with session.begin_nested():
            _insert(session, new, now, by)
    except DBAPIError:
        for entry in new:
            try:
                with session.begin_nested():
                    _insert(session, [entry], now, by)
            except DBAPIError as problem:
                reason = str(problem.orig).strip().splitlines()[0] if problem.orig else str(problem)
                report.rejected.append(Rejected(entry.row.number, _name(entry),
                                                _("could not be stored: %(reason)s", reason=reason)))
    for entry in new:
        if entry.customer_id is not None:
            report.created.append((entry.row.number, entry.customer_id))
    for entry in prepared:
        if entry.same_as is not None:
            if entry.same_as.customer_id is None:
                report.rejected.append(Rejected(entry.row.number, _name(entry),
                                                _("duplicates row %(row)s, which was not stored",
                                                  row=entry.same_as.row.number)))
            else:
                report.matched.append(Matched(entry.row.number, _name(entry), entry.same_as.customer_id,
                                              entry.same_as_reasons))


def _name(entry: _Prepared) -> str:
    return entry.clean.draft.name.strip()


def _existing_keys(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    ordered = sorted(keys)
    for start in range(0, len(ordered), KEY_LOOKUP_CHUNK):
        chunk = ordered[start:start + KEY_LOOKUP_CHUNK]
        for customer_id, kind, value in session.execute(
            select(CustomerKey.customer_id, CustomerKey.kind, CustomerKey.value).where(store.key_condition(chunk))
        ):
            found[(kind, value)].append(customer_id)
    return found


def _insert(session: Session, entries: list[_Prepared], now: datetime, by: str) -> None:
    if not entries:
        return
    ids = session.scalars(
        insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
        [store.customer_row(e.clean, now, by, e.curator_id) for e in entries],
    ).all()
    keys, contacts = [], []
    for entry, customer_id in zip(entries, ids):
        keys += [{"customer_id": customer_id, "kind": kind, "value": value} for kind, value in entry.clean.keys]
        contacts += [{**row, "customer_id": customer_id} for row in store.contact_rows(entry.clean)]
    session.execute(insert(CustomerKey), keys)
    if contacts:
        session.execute(insert(ContactPerson), contacts)
    for entry, customer_id in zip(entries, ids):
        entry.customer_id = customer_id


def _draft(values: dict[str, Any], default_curator: str | None) -> CustomerDraft:
    def text(key: str) -> str | None:
        value = values.get(key)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    kind_text = (text("kind") or "").lower()
    kind = KINDS.get(kind_text, kind_text) if kind_text else None
    inn = text("inn")
    if inn and re.fullmatch(r"\d+\.0", inn):  # Excel keeps numbers as floats
        inn = inn[:-2]
    if kind is None:
        kind = "person" if inn and len(inn) == 12 and not _looks_like_company(text("name") or "") else "organisation"
    contacts = []
    if text("contact"):
        contacts.append(ContactDraft(name=text("contact"), position=text("position"),
                                     phones=_split(values.get("contact_phone")),
                                     emails=_split(values.get("contact_email")),
                                     birthday=values.get("birthday") if isinstance(values.get("birthday"), date) else None))
    return CustomerDraft(
        name=text("name") or "",
        kind=kind,
        partner_role=(text("partner_role") or "customer").lower(),
        inn=inn,
        status=(text("status") or "potential").lower(),
        curator=text("curator") or default_curator,
        relationship_stage=text("relationship_stage"),
        importance=(text("importance") or "").upper() or None,
        category=text("category"),
        phones=_split(values.get("phone")),
        emails=_split(values.get("email")),
        addresses=[{"kind": "legal", "text": text("address")}] if text("address") else [],
        contacts=contacts,
    )


def _looks_like_company(name: str) -> bool:
    return bool(re.search(r"\b(ооо|ип|ао|зао|пао|llc|ltd|sia)\b", name.lower()))


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return [part.strip() for part in re.split(r"[;,\n]", str(value)) if part.strip()]


def _field_of(header: str) -> str | None:
    key = re.sub(r"\s+", " ", str(header or "").strip().lower().replace("ё", "е"))
    for field_name, names in HEADERS.items():
        if key in names:
            return field_name
    return None


def _mapped(headers: list[Any]) -> list[str | None]:
    fields = [_field_of(h) for h in headers]
    if "name" not in fields:
        raise ValueError(f"The file has no name column (found: {', '.join(str(h) for h in headers)}); "
                         f"name it one of: {', '.join(HEADERS['name'])}")
    return fields


def _csv_rows(path: Path) -> Iterator[SourceRow]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251")  # Excel on Russian Windows saves CSV in cp1251
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=";,\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    fields = _mapped(next(reader, []))
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        yield SourceRow(number, _combine(fields, cells))


def _xlsx_rows(path: Path) -> Iterator[SourceRow]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        fields = _mapped(list(next(rows, [])))
        for number, cells in enumerate(rows, start=1):
            if not any(cell not in (None, "") for cell in cells):
                continue
            yield SourceRow(number, _combine(fields, [c.date() if isinstance(c, datetime) else c for c in cells]))
    finally:
        workbook.close()


def _combine(fields: list[str | None], cells: list[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field_name, cell in zip(fields, cells):
        if field_name is None or cell in (None, ""):
            continue
        if field_name in ("phone", "email") and field_name in values:
            values[field_name] = f"{values[field_name]};{cell}"
        else:
            values[field_name] = cell
    return values


def _vcard_rows(path: Path) -> Iterator[SourceRow]:
    """Outlook and phones export vCard 2.1 (often quoted-printable in CHARSET=windows-1251,
    with soft line breaks) or 3.0/4.0 (UTF-8, folded lines); vobject reads each card. The
    file is cut into cards here, so that a broken card is a rejected row naming the file
    and the card's line and the cards after it are still read. An organisation card (ORG)
    becomes the customer with the person as its contact, a card of an organisation alone
    (KIND:org, or ORG without a name) the customer; a card without ORG is a private person."""
    for number, (line, card_lines) in enumerate(_vcard_cards(path.read_bytes()), start=1):
        where = _("%(file)s, card %(card)s at line %(line)s", file=path.name, card=number, line=line)
        if card_lines is None:
            yield SourceRow(number, {}, problem=_("%(where)s: the card has no END:VCARD", where=where))
            continue
        try:
            card = _read_card(card_lines)
        except vobject.base.VObjectError as problem:
            if hasattr(problem, "lineNumber"):
                problem_text = _("%(where)s: line %(line)s cannot be read (%(reason)s)", where=where,
                                 line=line + problem.lineNumber - 1, reason=problem.msg)
            else:
                problem_text = _("%(where)s: the card cannot be read (%(reason)s)", where=where, reason=problem.msg)
            yield SourceRow(number, {}, problem=problem_text)
        except LookupError as problem:
            yield SourceRow(number, {}, problem=_("%(where)s: the card names an unknown character set (%(reason)s)",
                                                  where=where, reason=str(problem)))
        except UnicodeError as problem:
            yield SourceRow(number, {}, problem=_("%(where)s: the card's text is not in the character set it names "
                                                  "(%(charset)s)", where=where, charset=problem.encoding))
        except Exception as problem:  # vobject fails on some malformed cards otherwise (AttributeError, binascii.Error)
            failure = f"{type(problem).__name__}: {problem}"
            yield SourceRow(number, {}, problem=_("%(where)s: the card cannot be read (%(reason)s)", where=where,
                                                  reason=failure))
        else:
            yield SourceRow(number, _card_values(card))


def _vcard_cards(raw: bytes) -> Iterator[tuple[int, list[str] | None]]:
    """(line of BEGIN:VCARD, the card's lines) for each card of the file; None for the lines
    of a card that ends without END:VCARD. Bytes that are not UTF-8 (an 8-bit 2.1 card in
    cp1251, or a UTF-8 character split by a fold) are kept as surrogate escapes, which
    ``_text`` decodes once vobject has unfolded and split the values."""
    start, card = 0, None
    for number, line in enumerate(raw.removeprefix(codecs.BOM_UTF8).splitlines(), start=1):
        word = line.strip().upper()
        if word == b"BEGIN:VCARD":
            if card is not None:
                yield start, None
            start, card = number, []
        if card is not None:
            card.append(line.decode("utf-8", "surrogateescape"))
            if word == b"END:VCARD":
                yield start, card
                card = None
    if card is not None:
        yield start, None


# A property whose value is binary (a photo, a logo, a sound, a key), encoded in base64.
_BASE64_PROPERTY = re.compile(r"[^:]*;\s*(ENCODING\s*=\s*)?(BASE64|B)\s*[;:]", re.IGNORECASE)
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]+")
_QUOTED_PRINTABLE_HEAD = re.compile(r"([^:;]+)([^:]*QUOTED-PRINTABLE[^:]*):", re.IGNORECASE)


def _read_card(lines: list[str]):
    """The card as vobject reads it, after the two repairs that real 2.1 exports need:

    - crmflow keeps no pictures, and phones write a 2.1 photo's base64 lines without the
      indent that folding needs (ended by a blank line, as 2.1 says), which vobject refuses:
      binary values are blanked out (blank lines keep the line numbers of errors right);
    - quoted-printable text without a CHARSET that is not UTF-8 is read as windows-1251
      (vobject assumes UTF-8 and fails).
    """
    lines = _without_binary_values(lines)
    try:
        return vobject.readOne("\r\n".join(lines), allowQP=True)
    except UnicodeDecodeError:
        return vobject.readOne("\r\n".join(_with_default_charset(lines)), allowQP=True)


def _without_binary_values(lines: list[str]) -> list[str]:
    kept, in_binary = [], False
    for line in lines:
        if in_binary and (not line.strip() or line[:1] in " \t" or _BASE64_LINE.fullmatch(line.strip())):
            kept.append("")
            continue
        in_binary = bool(_BASE64_PROPERTY.match(line))
        kept.append("" if in_binary else line)
    return kept


def _with_default_charset(lines: list[str]) -> list[str]:
    repaired = []
    for line in lines:
        head = _QUOTED_PRINTABLE_HEAD.match(line)
        if head and "CHARSET" not in head.group(2).upper():
            line = f"{head.group(1)};CHARSET=windows-1251{line[head.end(1):]}"
        repaired.append(line)
    return repaired


_UNDECODED = re.compile("[\udc80-\udcff]")


def _text(value: Any, charset: str | None = None) -> str:
    """A property's value (or one part of a structured one) as one line of text. vobject
    gives a list where the value had commas (in 2.1 they are only text), and bytes for
    quoted-printable it did not recognise (lowercase parameters); raw 8-bit text is in the
    card's CHARSET, else UTF-8, else cp1251 (Russian Windows)."""
    if isinstance(value, list):
        return ", ".join(part for part in (_text(item, charset) for item in value) if part)
    if isinstance(value, str) and _UNDECODED.search(value):
        value = value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        value = _decode(value, charset)
    return str(value or "").strip()


def _charset(line) -> str | None:
    return (line.params.get("CHARSET") or [None])[0]


def _decode(raw: bytes, charset: str | None) -> str:
    for encoding in filter(None, (charset, "utf-8")):
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("cp1251", "replace")


def _card_values(card) -> dict[str, Any]:
    def texts(name: str) -> list[str]:
        values = [_text(line.value, _charset(line)) for line in card.contents.get(name, [])]
        return [value for value in values if value]

    def first(name: str) -> str | None:
        values = texts(name)
        return values[0] if values else None

    def parts(name: str, fields: tuple[str, ...]) -> list[str]:
        """The non-empty parts of the first structured value (N, ADR) that has any."""
        for line in card.contents.get(name, []):
            found = [_text(getattr(line.value, field_name, ""), _charset(line)) for field_name in fields]
            if any(found):
                return [part for part in found if part]
        return []

    full_name = first("fn") or " ".join(parts("n", ("given", "family")))
    organisation = next((_text(line.value[0] if isinstance(line.value, list) else line.value, _charset(line))
                         for line in card.contents.get("org", []) if line.value), "") or None
    if organisation is None and (first("kind") or "").lower() == "org":
        organisation, full_name = full_name, None
    phones, emails = texts("tel"), texts("email")
    birthday = None
    if first("bday"):
        try:
            birthday = date.fromisoformat(first("bday")[:10])
        except ValueError:
            birthday = None
    address = ", ".join(parts("adr", ("box", "extended", "street", "city", "region", "code", "country"))) or None
    if organisation and full_name:
        return {"name": organisation, "kind": "organisation", "contact": full_name, "position": first("title"),
                "contact_phone": phones, "contact_email": emails, "birthday": birthday, "address": address}
    # A card of the organisation alone keeps its phones and e-mails on the customer.
    return {"name": organisation or full_name or "", "kind": "organisation" if organisation else "person",
            "phone": phones, "email": emails, "address": address}
