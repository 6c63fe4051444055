"""Import and duplicate-check figures (seed 004, D2).

    .venv/bin/python bench/import_customers.py [--rows 100000] [--database-url URL]

Generates a customer base (every 20th row bad, every 25th a duplicate of an earlier row),
imports it into a fresh database, and prints the import rate; then, on the resulting
customers, the median time of a duplicate check (`Crm.find_duplicates`) for a draft that
matches and one that does not, and the median of 10,000-row imports repeated on a fresh
database. Default: SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from pathlib import Path

from processes.customers import CustomerDraft
from processes.importer import import_customers
from processes.normalize import complete_inn
from processes.system import System, build_system


def generate(path: Path, rows: int, seed: int = 4) -> None:
    rnd = random.Random(seed)
    written = []
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["Наименование", "ИНН", "Телефон", "E-mail", "Категория"])
        for number in range(1, rows + 1):
            if number % 20 == 0:
                row = [f"Bad INN {number}", "1234567890", "", "", ""]
            elif number % 25 == 0 and written:
                earlier = rnd.choice(written)
                row = [earlier[0].upper(), "", "", earlier[3], ""]
            else:
                row = [f"ООО «Компания {number}»", complete_inn(f"{100000000 + number * 7919:09d}"[:9]),
                       f"+7 9{number:09d}", f"mail{number}@example.ru", rnd.choice(["Опт", "Розница"])]
                written.append(row)
            writer.writerow(row)


def fresh_system(url: str | None, directory: Path, name: str) -> System:
    system = build_system(url or f"sqlite:///{directory}/{name}.db", webhooks=None)
    system.init_db()
    system.engine.add_user("bench")
    return system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "base.csv"
        generate(path, args.rows)
        system = fresh_system(args.database_url, directory, "big")
        engine = system.engine
        started = time.perf_counter()
        report = import_customers(engine, path, "bench")
        elapsed = time.perf_counter() - started
        print(f"import of {args.rows:,} rows: {elapsed:.1f} s, {args.rows / elapsed:,.0f} rows/s "
              f"({len(report.created):,} created, {len(report.matched):,} matched, {len(report.rejected):,} rejected)")

        crm = system.crm
        hit = CustomerDraft(name="Компания 77, ООО", phones=["+7 9000000077"])
        miss = CustomerDraft(name="Nobody at all", inn=complete_inn("500100732"), emails=["nobody@nowhere.example"])
        for label, draft in (("matching", hit), ("not matching", miss)):
            timings = []
            for _ in range(200):
                t = time.perf_counter()
                crm.find_duplicates(draft)
                timings.append(time.perf_counter() - t)
            print(f"duplicate check on {len(report.created):,} customers, {label} draft: "
                  f"median {statistics.median(timings) * 1000:.2f} ms")
        engine.dispose()

        if args.database_url is None:
            small = directory / "small.csv"
            generate(small, 10_000)
            runs = []
            for run in range(3):
                engine = fresh_system(None, directory, f"small{run}").engine
                t = time.perf_counter()
                import_customers(engine, small, "bench")
                runs.append(time.perf_counter() - t)
                engine.dispose()
            print(f"import of 10,000 rows into an empty database: median {statistics.median(runs):.2f} s "
                  f"over {len(runs)} runs")


if __name__ == "__main__":
    main()
