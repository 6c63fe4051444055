"""Importing a customer base (seed 004): CSV, Excel, vCard; the duplicate check; bad rows;
and the ``crmflow import-customers`` command with its progress bar and report."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from processes.importer import import_customers
from processes.models import ContactPerson, Customer
from processes.normalize import complete_inn
from support import DATA as TEST_DATA

DATA = TEST_DATA / "processes"
CRMFLOW = Path(sys.executable).parent / "crmflow"


def customer_count(engine) -> int:
    with engine.reading() as session:
        return session.scalar(select(func.count()).select_from(Customer))


def test_a_csv_file_is_imported_with_a_report_of_every_row(crm):
    report = import_customers(crm.engine, DATA / "customers.csv", "ann")

    assert [row for row, _ in report.created] == [1, 2]
    assert [(m.row, tuple(map(str, m.reasons))) for m in report.matched] == [(5, ("same name “альфа трейд”",))]
    rejected = {r.row: str(r.reason) for r in report.rejected}
    assert set(rejected) == {3, 4, 6, 7}
    assert rejected[3] == "name: is required"
    assert "check digit" in rejected[4]
    assert "e-mail" in rejected[6]
    assert rejected[7] == "curator: there is no crmflow user 'nobody'"
    assert str(report.summary()) == "customers.csv: 7 rows: 2 created, 1 matched an existing customer, 4 rejected"
    assert report.summary().render("ru") == ("customers.csv: 7 строк: 2 созданы, 1 совпала с существующим клиентом, "
                                             "4 отклонены")
    assert report.rejected[-1].reason.render("ru") == "curator: нет пользователя crmflow 'nobody'"

    alfa = crm.customer(report.created[0][1])
    assert (alfa.inn, alfa.curator.username, alfa.category) == ("7707083893", "ann", "Оптовая торговля")
    assert alfa.addresses == [{"kind": "legal", "text": "г. Москва, ул. Тверская, 1"}]
    assert [(c.name, c.position) for c in alfa.contacts] == [("Иван Петров", "Директор")]

    again = import_customers(crm.engine, DATA / "customers.csv", "ann")
    assert again.created == [] and len(again.matched) == 3 and customer_count(crm.engine) == 2


def test_an_excel_file_is_imported(crm, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "INN", "Phone", "Email", "Type", "Importance"])
    sheet.append(["ООО «Эксель»", 7707083893, 74951112233, "xl@example.ru", "organisation", "a"])
    sheet.append(["Петров Пётр Петрович", None, "+7 903 000-11-22", None, "физическое лицо", None])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["Bad", "77", None, None, None, None])
    book.save(tmp_path / "base.xlsx")

    report = import_customers(crm.engine, tmp_path / "base.xlsx", "ann", curator="bob")
    assert len(report.created) == 2 and [r.row for r in report.rejected] == [4]
    first, second = (crm.customer(cid) for _, cid in report.created)
    assert (first.inn, first.phones, first.importance, first.curator.username) == (
        "7707083893", ["74951112233"], "A", "bob")
    assert second.kind == "person"


def test_an_outlook_vcard_export_is_imported(crm):
    report = import_customers(crm.engine, DATA / "outlook_contacts.vcf", "ann")
    assert len(report.created) == 2
    vector, person = (crm.customer(cid) for _, cid in report.created)
    assert vector.name == "ООО «Вектор-Снаб»" and vector.kind == "organisation"
    [contact] = vector.contacts
    assert (contact.name, contact.position) == ("Елена Смирнова", "Менеджер по закупкам")
    assert contact.phones == ["74957654321", "79167654321"] and contact.birthday.isoformat() == "1985-04-12"
    assert vector.addresses[0]["text"] == "ул. Ленина, 5, Москва, 101000, Россия"
    assert (person.name, person.kind, person.emails) == ("Андрей Кузнецов", "person", ["andrey.kuz@mail.example"])
    assert [r.row for r in report.rejected] == [3]
    assert [(m.row, m.customer_id) for m in report.matched] == [(4, vector.id)]


def test_an_unknown_file_type_or_a_file_without_names_is_refused(crm, tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown file type"):
        import_customers(crm.engine, tmp_path / "x.txt", "ann")
    (tmp_path / "nameless.csv").write_text("inn;phone\n7707083893;123\n")
    with pytest.raises(ValueError, match="no name column"):
        import_customers(crm.engine, tmp_path / "nameless.csv", "ann")


def generated_base(path: Path, rows: int, seed: int = 4) -> dict[str, int]:
    """A customer base with every 20th row bad and every 25th a duplicate of an earlier one."""
    rnd = random.Random(seed)
    expected = {"created": 0, "matched": 0, "rejected": 0}
    written: list[list[str]] = []
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["Наименование", "ИНН", "Телефон", "E-mail", "Категория"])
        for number in range(1, rows + 1):
            if number % 20 == 0:
                row = rnd.choice([["", "", "+7 495 000-00-01", "", ""], [f"Bad INN {number}", "1234567890", "", "", ""],
                                  [f"Bad phone {number}", "", "12", "", ""],
                                  [f"Bad mail {number}", "", "", "no-at-sign", ""]])
                expected["rejected"] += 1
            elif number % 25 == 0 and written:
                earlier = rnd.choice(written)
                row = [earlier[0].upper(), "", "", earlier[3], ""]
                expected["matched"] += 1
            else:
                row = [f"ООО «Компания {number}»", complete_inn(f"{100000000 + number * 7919:09d}"[:9]),
                       f"+7 9{number:09d}", f"mail{number}@example.ru", rnd.choice(["Опт", "Розница"])]
                written.append(row)
                expected["created"] += 1
            writer.writerow(row)
    return expected


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ten_thousand_rows_with_bad_ones_import_whole(crm, tmp_path):
    path = tmp_path / "base.csv"
    expected = generated_base(path, 10_000)
    seen = []

    report = import_customers(crm.engine, path, "ann", progress=seen.append)

    assert {"created": len(report.created), "matched": len(report.matched),
            "rejected": len(report.rejected)} == expected
    assert sum(seen) == 10_000
    assert customer_count(crm.engine) == expected["created"]
    assert all(str(r.reason) for r in report.rejected)


def test_a_row_the_database_refuses_is_rejected_and_the_rest_is_kept(crm, tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("name;category\nGood one;x\nToo long;" + "c" * 5000 + "\nGood two;y\n", encoding="utf-8")
    report = import_customers(crm.engine, path, "ann")
    created_names = sorted(crm.customer(cid).name for _, cid in report.created)
    if crm.engine.db.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        assert created_names == ["Good one", "Good two"]
        assert [r.row for r in report.rejected] == [2] and "could not be stored" in str(report.rejected[0].reason)
    else:
        assert len(created_names) == 3
    assert customer_count(crm.engine) == len(created_names)
    with crm.engine.reading() as session:
        assert session.scalar(select(func.count()).select_from(ContactPerson)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_import_command_shows_progress_and_the_report(crm, tmp_path, database_url):
    report_file = tmp_path / "report.csv"
    env = {**os.environ, "CRMFLOW_DATABASE_URL": database_url}
    result = subprocess.run([str(CRMFLOW), "import-customers", str(DATA / "customers.csv"), "--by", "ann",
                             "--report", str(report_file)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Importing customers.csv" in result.stdout
    assert "7 rows: 2 created, 1 matched an existing customer, 4 rejected" in result.stdout
    assert "row 4 rejected (ООО «Бета»): inn: INN '1234567890' has a wrong check digit" in result.stdout
    assert "row 5 matched customer #1: same name “альфа трейд”" in result.stdout
    rows = list(csv.DictReader(report_file.open(encoding="utf-8")))
    assert [r["result"] for r in rows].count("rejected") == 4

    missing_user = subprocess.run([str(CRMFLOW), "import-customers", str(DATA / "customers.csv"), "--by", "ghost"],
                                  capture_output=True, text=True, env=env, timeout=120)
    assert missing_user.returncode == 1 and "There is no crmflow user called 'ghost'" in missing_user.stderr
    assert "Importing" not in missing_user.stdout


def imported(crm, report) -> dict[int, object]:
    """The created customers by the row (card) they came from."""
    return {row: crm.customer(customer_id) for row, customer_id in report.created}


def test_vcard_21_from_outlook_and_phones_quoted_printable_cp1251_soft_breaks_and_photos(crm):
    report = import_customers(crm.engine, DATA / "phones_and_outlook_21.vcf", "ann")

    customers = imported(crm, report)
    assert sorted(customers) == [1, 2, 3, 4, 6] and report.matched == []
    # Outlook: every text quoted-printable in windows-1251, the long ones with soft line breaks.
    ural = customers[1]
    assert (ural.name, ural.kind) == ("ООО «Уральская металлообрабатывающая компания»", "organisation")
    assert ural.addresses == [{"kind": "legal",
                               "text": "ул. Малышева, 51, офис 1204, Екатеринбург, Свердловская обл., 620014, Россия"}]
    [orlova] = ural.contacts
    assert (orlova.name, orlova.position) == ("Татьяна Сергеевна Орлова", "Начальник отдела снабжения")
    assert orlova.phones == ["73432104567", "79215556677", "73432104568"]
    assert orlova.emails == ["t.orlova@umk-ural.example", "snab@umk-ural.example"]
    # Android: UTF-8 quoted-printable broken inside a character, a photo without the indent.
    belov = customers[2]
    assert (belov.name, belov.kind, belov.phones, belov.emails) == (
        "Константин Белов", "person", ["79031112233", "74959876543"], ["k.belov@mail.example"])
    # An old phone: quoted-printable cp1251 without a CHARSET; N without FN.
    assert (customers[3].name, customers[3].phones) == ("Марина Гусева", ["79261234567"])
    # 8-bit cp1251 (not quoted-printable) in the same file as 8-bit UTF-8.
    siberia = customers[4]
    assert siberia.name == "АО «Сибирский завод»"
    assert [(c.name, c.phones) for c in siberia.contacts] == [("Игорь Козлов", ["73832223344"])]
    assert customers[6].name == "Сергей Миронов"
    # The broken card is a row of the report naming the file and the line; the cards after it were read.
    assert [(r.row, str(r.reason)) for r in report.rejected] == [
        (5, "phones_and_outlook_21.vcf, card 5 at line 68: line 72 cannot be read "
            "(Failed to parse line: это не свойство)")]


def test_vcard_30_and_40_with_folded_lines_several_phones_and_mails(crm):
    report = import_customers(crm.engine, DATA / "contacts_30.vcf", "ann")
    assert report.rejected == [] and report.matched == []
    baltic, kovalev, schneider = (customers := imported(crm, report))[1], customers[2], customers[3]
    # Lines folded at 75 bytes, some inside a UTF-8 character; grouped properties (item1.TEL).
    assert baltic.name == "ООО «Северо-Западная логистическая компания «Балтийский берег»»"
    [zakharova] = baltic.contacts
    assert (zakharova.name, zakharova.position, zakharova.birthday.isoformat()) == (
        "Анна Викторовна Захарова", "Ведущий специалист по закупкам", "1987-09-03")
    assert zakharova.phones == ["78123152211", "79215556677", "78002000000"]
    assert zakharova.emails == ["a.zakharova@sz-logistic.example", "anna.z@mail.example"]
    assert baltic.addresses[0]["text"] == "Невский проспект, 28, Санкт-Петербург, 191186, Россия"
    # FN empty: the name comes from N; an extension is not part of the number.
    assert (kovalev.name, kovalev.kind, kovalev.phones) == ("Дмитрий Ковалёв", "person", ["79261234567", "74957654321"])
    assert (schneider.name, schneider.contacts[0].phones) == ("Schneider Verpackung GmbH", ["4930901820"])
    assert schneider.addresses[0]["text"] == "Friedrichstraße 100, Berlin, 10117, Deutschland"

    report = import_customers(crm.engine, DATA / "contacts_40.vcf", "ann")
    customers = imported(crm, report)
    assert sorted(customers) == [1, 2, 4]
    vtz = customers[1]
    [lebedeva] = vtz.contacts
    assert (vtz.name, lebedeva.name, lebedeva.position, lebedeva.birthday.isoformat()) == (
        "АО «Волжский трубный завод»", "Ольга Петровна Лебедева", "Директор по закупкам", "1979-02-14")
    assert lebedeva.phones == ["74951112233", "79161112233"]  # tel: URIs, one with ;ext=
    assert lebedeva.emails == ["o.lebedeva@vtz.example", "olga.lebedeva@mail.example"]
    # KIND:org: the card is the organisation, its phone and e-mail are the customer's.
    packing = customers[2]
    assert (packing.name, packing.kind, packing.contacts) == ("ООО «Сибирская упаковка»", "organisation", [])
    assert (packing.phones, packing.emails) == (["73832223344"], ["info@sib-pack.example"])
    assert packing.addresses[0]["text"] == "ул. Ленина, 12, Новосибирск, 630004, Россия"
    assert (customers[4].name, customers[4].phones) == ("Игорь Соколов", ["79031112234"])
    assert [(r.row, str(r.reason)) for r in report.rejected] == [
        (3, "contacts_40.vcf, card 3 at line 26: the card has no END:VCARD")]


def test_every_broken_card_is_a_rejected_row_and_the_import_goes_on(crm, tmp_path):
    cards = [
        "BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=x-unknown;ENCODING=QUOTED-PRINTABLE:=C5=EB\r\nEND:VCARD",
        "BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C5=EB=E5=ED=E0\r\nEND:VCARD",
        "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Agent\r\nAGENT:\r\nBEGIN:VCARD\r\nFN:Inner\r\nEND:VCARD\r\nEND:VCARD",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;X=\"open:Quote\r\nEND:VCARD",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Valid Card\r\nTEL:+7 916 111-22-33\r\nEND:VCARD",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bad Phone\r\nTEL:12\r\nEND:VCARD",
    ]
    path = tmp_path / "broken.vcf"
    path.write_text("\r\n".join(cards) + "\r\n", encoding="utf-8")

    report = import_customers(crm.engine, path, "ann")

    rejected = {r.row: str(r.reason) for r in report.rejected}
    assert rejected[1] == ("broken.vcf, card 1 at line 1: the card names an unknown character set "
                           "(unknown encoding: x-unknown)")
    assert rejected[2] == "broken.vcf, card 2 at line 5: the card's text is not in the character set it names (utf-8)"
    # An AGENT's embedded card: the outer card is cut off by it, the inner one read alone.
    assert rejected[3] == "broken.vcf, card 3 at line 9: the card has no END:VCARD"
    assert rejected[5] == ("broken.vcf, card 5 at line 17: line 19 cannot be read "
                           "(Failed to parse line: FN;X=\"open:Quote)")
    assert rejected[7] == "phones: '12' is not a phone number (too few digits for +7)"
    assert [(row, crm.customer(cid).name) for row, cid in report.created] == [(4, "Inner"), (6, "Valid Card")]
    assert len(report.rejected) == 5 and report.total == 7
