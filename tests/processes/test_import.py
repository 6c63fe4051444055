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
